//! Incidents: listing and the operator's retry.

use axum::http::StatusCode;
use chrono::TimeDelta;
use serde_json::json;

use crate::harness::Api;

/// Fails the credit check until it raises an incident; returns the instance id.
pub async fn stuck_order(api: &Api) -> String {
    let id = api.order("20000.00", "sam").await;
    for _ in 0..10 {
        let answer = api
            .post(
                "/v1/jobs/fetch-and-lock",
                "robot",
                json!({"worker_id": "w1", "topics": ["credit.check"], "max_jobs": 1, "lock_ms": 60000}),
            )
            .await;
        let Some(job) = answer.expect(StatusCode::OK).as_array().unwrap().first().cloned() else { break };
        api.post(
            &format!("/v1/jobs/{}/fail", job["id"].as_str().unwrap()),
            "robot",
            json!({"epoch": job["epoch"], "message": "bureau down"}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
        api.advance(TimeDelta::hours(1));
    }
    id
}

#[tokio::test]
async fn an_admin_lists_and_retries_incidents() {
    let Some(api) = Api::new().await else { return };
    let id = stuck_order(&api).await;
    api.get("/v1/incidents", "mia").await.expect_error(StatusCode::FORBIDDEN, "missing_role");
    let list = api.get("/v1/incidents", "ada").await;
    let incidents = list.expect(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(incidents.len(), 1, "{}", list.text);
    let incident = &incidents[0];
    assert_eq!(
        (incident["instance_id"].as_str(), incident["process"].as_str()),
        (Some(id.as_str()), Some("order_approval"))
    );
    assert_eq!((incident["node"].as_str(), incident["state"].as_str()), (Some("check_credit"), Some("open")));
    assert!(incident["message"].as_str().unwrap().contains("bureau down"), "{}", list.text);
    let by_instance = api.get(&format!("/v1/incidents?instance={id}"), "ada").await;
    assert_eq!(by_instance.expect(StatusCode::OK).as_array().unwrap().len(), 1);
    let incident_id = incident["id"].as_str().unwrap();
    api.post_empty(&format!("/v1/incidents/{incident_id}/retry"), "mia")
        .await
        .expect_error(StatusCode::FORBIDDEN, "missing_role");
    let retried = api.post_empty(&format!("/v1/incidents/{incident_id}/retry"), "ada").await;
    assert_eq!(retried.expect(StatusCode::OK)["state"], "resolved");
    api.post_empty(&format!("/v1/incidents/{incident_id}/retry"), "ada")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let open = api.get("/v1/incidents", "ada").await;
    assert_eq!(open.expect(StatusCode::OK), &json!([]));
    let all = api.get("/v1/incidents?all=true", "ada").await;
    assert_eq!(all.expect(StatusCode::OK)[0]["state"], "resolved");
    // The job runs again.
    let job = api.one_job("credit.check").await;
    assert_eq!(job["instance_id"], id.as_str());
    api.post_empty("/v1/incidents/i-x-1.incident.1/retry", "ada")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}
