//! How the group-commit writer gathers a batch, and how long it lingers for more.
//!
//! A batch costs its transaction's fixed round trips (begin, instance locks, one statement per
//! table written, wake-ups, commit) once, however many writes share it. Where each round trip is
//! paid on the network and on the database server (PostgreSQL), a writer that waits a few
//! milliseconds for more writes when others are coming commits fewer, fuller batches and spends
//! less CPU a write. It waits only when the batch or the one before it had company (a lone
//! caller, one person completing one task on a quiet server, is written at once) and only until
//! the batch holds [`LINGER_UNTIL`] writes (a node whose callers queue that many while a batch
//! commits has nothing to gain from waiting).

use std::time::Duration;

use tokio::sync::mpsc;

/// How long a PostgreSQL node's writer waits for more writes by default (see the module docs).
/// Measured on the multinode order-to-cash run: 6 ms took an eighth off the CPU an order.
pub const POSTGRES_WRITE_LINGER: Duration = Duration::from_millis(6);

/// A batch of this many writes goes without lingering: its transaction's fixed round trips are
/// shared widely enough already, and a writer kept busy by one node's many callers (who queue
/// this many while a batch commits) would only lose pace waiting.
pub(super) const LINGER_UNTIL: usize = 16;

/// The next batch: the first write, those already queued behind it, then, when `linger` is not
/// zero, the batch holds fewer than [`LINGER_UNTIL`] and it or the batch before it
/// (`company_before`) held more than one write, those that arrive within `linger` of the first,
/// until it holds [`LINGER_UNTIL`]. At most `max_batch`; `None` when the queue is closed and
/// empty.
pub(super) async fn gather<T>(
    requests: &mut mpsc::UnboundedReceiver<T>,
    max_batch: usize,
    linger: Duration,
    company_before: bool,
) -> Option<Vec<T>> {
    let first = requests.recv().await?;
    let started = tokio::time::Instant::now();
    let mut batch = vec![first];
    while batch.len() < max_batch {
        match requests.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    let enough = max_batch.min(LINGER_UNTIL);
    if linger.is_zero() || batch.len() >= enough || !(company_before || batch.len() > 1) {
        return Some(batch);
    }
    let deadline = started + linger;
    while batch.len() < enough {
        match tokio::time::timeout_at(deadline, requests.recv()).await {
            Ok(Some(next)) => batch.push(next),
            // The linger is over, or the queue closed: what is gathered goes.
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(6);

    /// Sends `value` on `queue` after `after` of (paused, virtual) time.
    fn send_later(queue: &mpsc::UnboundedSender<u32>, after: Duration, value: u32) {
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = queue.send(value);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_write_after_a_lone_batch_goes_at_once() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        send_later(&queue, Duration::from_millis(2), 2);
        let started = tokio::time::Instant::now();
        let batch = gather(&mut requests, 64, LINGER, false).await.unwrap();
        assert_eq!(batch, vec![1]);
        assert_eq!(started.elapsed(), Duration::ZERO, "a lone caller waits for nobody");
        assert_eq!(gather(&mut requests, 64, LINGER, false).await.unwrap(), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_batch_with_company_the_writer_lingers_for_the_writes_that_follow() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        send_later(&queue, Duration::from_millis(2), 2);
        send_later(&queue, Duration::from_millis(5), 3);
        send_later(&queue, Duration::from_millis(9), 4);
        let started = tokio::time::Instant::now();
        let batch = gather(&mut requests, 64, LINGER, true).await.unwrap();
        assert_eq!(batch, vec![1, 2, 3], "the writes within the linger join; the later one waits");
        assert_eq!(started.elapsed(), LINGER);
        let batch = gather(&mut requests, 64, LINGER, true).await.unwrap();
        assert_eq!(batch, vec![4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_with_company_lingers_even_after_a_lone_one() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        queue.send(2).unwrap();
        send_later(&queue, Duration::from_millis(3), 3);
        let batch = gather(&mut requests, 64, LINGER, false).await.unwrap();
        assert_eq!(batch, vec![1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_without_waiting_out_the_linger() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        send_later(&queue, Duration::from_millis(1), 2);
        send_later(&queue, Duration::from_millis(2), 3);
        let started = tokio::time::Instant::now();
        let batch = gather(&mut requests, 3, LINGER, true).await.unwrap();
        assert_eq!(batch, vec![1, 2, 3]);
        assert_eq!(started.elapsed(), Duration::from_millis(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_has_gathered_enough_goes_with_all_that_is_queued() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        let queued = u32::try_from(LINGER_UNTIL).unwrap() + 4;
        for n in 0..queued {
            queue.send(n).unwrap();
        }
        send_later(&queue, Duration::from_millis(1), 99);
        let started = tokio::time::Instant::now();
        let batch = gather(&mut requests, 64, LINGER, true).await.unwrap();
        assert_eq!(batch, (0..queued).collect::<Vec<_>>());
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Short of enough, it lingers until it has enough, and no longer.
        for n in 0..3 {
            queue.send(100 + n).unwrap();
        }
        for n in 3..u32::try_from(LINGER_UNTIL).unwrap() + 2 {
            send_later(&queue, Duration::from_micros(100 * u64::from(n)), 100 + n);
        }
        let started = tokio::time::Instant::now();
        let batch = gather(&mut requests, 64, LINGER, true).await.unwrap();
        assert_eq!(batch.len(), LINGER_UNTIL, "{batch:?}");
        assert!(started.elapsed() < LINGER, "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn no_linger_takes_only_what_is_queued() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        queue.send(2).unwrap();
        send_later(&queue, Duration::from_millis(1), 3);
        assert_eq!(gather(&mut requests, 64, Duration::ZERO, true).await.unwrap(), vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_ends_the_gathering() {
        let (queue, mut requests) = mpsc::unbounded_channel();
        queue.send(1).unwrap();
        queue.send(2).unwrap();
        drop(queue);
        let started = tokio::time::Instant::now();
        assert_eq!(gather(&mut requests, 64, LINGER, true).await.unwrap(), vec![1, 2]);
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing more can come");
        assert_eq!(gather(&mut requests, 64, LINGER, true).await, None);
    }
}
