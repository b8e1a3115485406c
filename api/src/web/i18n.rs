//! The pages' words in English and Simplified Chinese, and the one place where money, dates and
//! times are formatted for a reader.
//!
//! One catalogue per language, keyed by a short English id; a key missing from a catalogue is a
//! test failure, never a blank on a page.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

/// A language the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Lang {
    /// From a `lang` value or cookie: `zh`, `zh-CN`, `zh-Hans` are Chinese; anything else English.
    pub fn parse(value: &str) -> Option<Lang> {
        let value = value.trim().to_ascii_lowercase();
        if value.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if value.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header the pages speak; English otherwise.
    pub fn from_accept(header: &str) -> Lang {
        header.split(',').find_map(|part| Lang::parse(part.split(';').next().unwrap_or_default())).unwrap_or(Lang::En)
    }

    /// The colon after a label, as the language writes it: `Status: ` or `状态：`.
    pub fn colon(self) -> &'static str {
        match self {
            Lang::En => ": ",
            Lang::ZhCn => "：",
        }
    }

    /// What separates the items of a list: `A, B` or `A、B`.
    pub fn list_separator(self) -> &'static str {
        match self {
            Lang::En => ", ",
            Lang::ZhCn => "、",
        }
    }

    /// `text` in brackets after what it qualifies, as the language writes it: ` (optional)` or
    /// `（选填）` (full-width, with no space before).
    pub fn bracketed(self, text: &str) -> String {
        match self {
            Lang::En => format!(" ({text})"),
            Lang::ZhCn => format!("（{text}）"),
        }
    }

    /// The BCP 47 tag, for `<html lang>` and the cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The page's word for `key`.
    pub fn t(self, key: &'static str) -> &'static str {
        let table = match self {
            Lang::En => EN,
            Lang::ZhCn => ZH_CN,
        };
        table.iter().find(|(k, _)| *k == key).map_or(key, |(_, v)| v)
    }
}

/// English.
const EN: &[(&str, &str)] = &[
    ("app", "Cloverleaf"),
    ("sign_in", "Sign in"),
    ("sign_out", "Sign out"),
    ("token", "Access token"),
    ("token_help", "The personal token your administrator gave you."),
    ("bad_token", "That token is not valid. Check it and try again."),
    ("user_name", "User name"),
    ("password", "Password"),
    ("or_token", "Or sign in with your access token"),
    ("bad_password", "That user name and password do not match. Check them and try again."),
    (
        "too_many_attempts",
        "Too many failed sign-ins for this user name. Try again in 15 minutes, or sign in with your access token.",
    ),
    ("inbox", "Inbox"),
    ("instances", "Orders and cases"),
    ("board", "Finance board"),
    ("operations", "Operations"),
    ("language", "中文"),
    ("signed_in_as", "Signed in as"),
    ("task", "Task"),
    ("process", "Process"),
    ("due", "Due"),
    ("overdue", "Overdue"),
    ("no_due", "No due date"),
    ("state", "State"),
    ("claimed_by", "Claimed by"),
    ("barred_from_task", "Not yours to decide: separation of duties"),
    ("assigned_to", "Assigned to"),
    ("offered_to", "Offered to {roles}"),
    ("open_task", "Open"),
    ("no_tasks", "Nothing waits for you."),
    ("shown_range", "{from}–{to} of {total}"),
    (
        "shown_range_more",
        "{from}–{to} of {total} you may see among the newest cases; narrow the list to find older ones",
    ),
    ("shown_range_newest_letters", "{from}–{to} of the newest {total}; choose a delivery state to find older ones"),
    ("previous_page", "‹ Previous"),
    ("next_page", "Next ›"),
    ("pages", "Pages"),
    ("all_processes", "All processes"),
    ("only_overdue", "Only overdue"),
    ("filter", "Filter"),
    ("sort_due", "Sort by due date"),
    ("claim", "Claim"),
    ("unclaim", "Release"),
    ("delegate", "Delegate to"),
    ("delegate_button", "Delegate"),
    ("complete", "Submit"),
    ("approve", "Approve"),
    ("reject", "Reject"),
    ("yes", "Yes"),
    ("no", "No"),
    ("context", "Business context"),
    ("form", "Decision"),
    ("optional", "optional"),
    ("done_task", "Done: the task is completed."),
    ("refused", "Not possible"),
    ("sod_refused", "You may not decide this task: the process requires a different person here"),
    ("not_candidate", "This task is not offered to you."),
    ("task_closed", "This task was completed or withdrawn in the meantime."),
    ("claimed_other", "Someone else claimed this task."),
    ("invalid_form", "Please correct the form"),
    // Refusals in words, from an error's code and details.
    ("done_delegated", "Done: the task was handed on."),
    ("sod_not_by", "You may not decide this task: here the process requires someone other than {who}."),
    ("sod_not_by_other", "{user} may not decide this task: here the process requires someone other than {who}."),
    ("sod_requester", "the requester or whoever entered the request for them"),
    ("sod_named", "the person recorded as “{label}”"),
    ("sod_decided", "the person who decided “{step}”"),
    ("form_required", "required"),
    ("form_wrong_number", "write a number, like 1250.00"),
    ("form_wrong_whole", "write a whole number"),
    ("form_wrong_date", "write a date, like 2026-03-31"),
    ("form_wrong_choice", "choose one"),
    ("form_wrong_kind", "not a value this field takes"),
    ("form_cents", "at most two decimals (whole cents)"),
    ("form_too_large", "too large"),
    ("form_greater", "must be greater than {n}"),
    ("form_at_least", "must be at least {n}"),
    ("form_less", "must be less than {n}"),
    ("form_at_most", "must be at most {n}"),
    ("form_unknown_field", "not a field of this form"),
    ("err_role_one", "You may not {action}: that needs the role {roles}."),
    ("err_role_any", "You may not {action}: that needs one of the roles {roles}."),
    ("do_this", "do this"),
    (
        "err_not_yours_assigned",
        "This task is not offered to you: it is assigned to someone else, and you do not stand in for them.",
    ),
    ("err_not_yours_roles", "This task is not offered to you: it waits for the role {roles}, which you do not hold."),
    ("err_delegate_roles", "The task cannot be delegated to {user}: it is offered to {roles}, which they do not hold."),
    (
        "err_not_reader",
        "You may not see this case: you take no part in it, and its process does not let your roles read it.",
    ),
    ("err_no_user_name", "Give the user name of a colleague."),
    (
        "err_delegation_loop",
        "The task cannot go to {user}: they held it already, and a delegation may not go back along its chain.",
    ),
    ("err_not_claimed", "This task is not claimed: there is nothing to release."),
    ("err_incident_closed", "This incident was resolved in the meantime."),
    ("err_changed", "The case changed in the meantime: reload the page and try again."),
    ("err_not_found", "There is no {what} {id}."),
    ("err_not_deployed", "No process {id} is deployed."),
    ("err_no_version", "Process {id} has no version {version}."),
    ("err_no_ledger", "This server keeps no finance sub-ledger: it has no finance figures or customer letters."),
    ("thing_case", "case"),
    ("thing_task", "task"),
    ("thing_job", "job"),
    ("thing_incident", "open incident"),
    ("thing_report", "report"),
    ("thing_alert", "alert"),
    ("thing_letter", "customer letter"),
    ("thing_indicator", "indicator"),
    ("thing_page", "page"),
    ("instance", "Case"),
    ("status", "Status"),
    ("variables", "Data"),
    ("history", "History"),
    ("diagram", "Where it stands"),
    ("when", "When"),
    ("started_at", "Started"),
    ("what", "What"),
    ("who", "Who"),
    ("for_whom", "on behalf of"),
    ("not_found", "Not found"),
    ("no_such_page", "There is no page at {path}."),
    ("archived", "Archived"),
    ("archived_text", "{case} has ended and was moved to the archive {archive} on {at}; its records are kept there."),
    ("forbidden", "Not allowed"),
    ("forbidden_text", "Your roles do not allow this page."),
    ("expired", "Your session has ended. Please sign in again."),
    ("csrf", "The form was too old or came from elsewhere. Please try again from the page."),
    ("error", "Something went wrong"),
    ("error_text", "The server could not do this. Nothing was changed; try again, or ask your administrator."),
    ("back", "Back"),
    ("aging", "Receivables by age"),
    ("open_receivables", "Open receivables"),
    ("cycle_time", "Cycle time by process"),
    ("hours", "h"),
    ("sla_breaches", "Approvals past their SLA"),
    ("incidents", "Open incidents"),
    ("retry", "Retry"),
    ("step", "Step"),
    ("away", "Away"),
    ("away_title", "While you are away"),
    (
        "away_now",
        "From {from} to {until}, {substitute} sees and decides the tasks assigned to you or claimed by you, on your behalf.",
    ),
    (
        "away_days",
        "From {first} to {last} ({zone}), {substitute} sees and decides the tasks assigned to you or claimed by you, on your behalf.",
    ),
    ("standing_in", "Today you stand in for {people}: their tasks are in your inbox."),
    ("away_in_force", "You are away: {substitute} decides the tasks assigned to you until {until}."),
    ("away_change", "Change or end"),
    ("away_none", "No substitute is named: the tasks assigned to you wait for you."),
    ("away_end", "End it now"),
    ("away_name", "Name a substitute"),
    (
        "away_roles",
        "Tasks offered to a role stay with everyone who holds it; your substitute takes the tasks assigned to you or claimed by you, for whole days on your clock.",
    ),
    ("substitute", "Substitute (their user name)"),
    ("away_first_day", "First day away"),
    ("away_last_day", "Last day away"),
    ("away_save", "Name the substitute"),
    ("away_unknown", "“{name}” is not a user of this server: give a colleague's user name."),
    ("away_self", "Name someone else: you cannot stand in for yourself."),
    (
        "away_bad_days",
        "Give the first and the last day away as dates such as 2026-12-31, the last not before the first and not over yet.",
    ),
    ("day_placeholder", "YYYY-MM-DD"),
    (
        "calendar_unlisted",
        "Calendar “{calendar}” lists no holidays or make-up working days for {years}: business days there count as \
         plain weeks (its working weekdays, no holidays) until they are added to its calendar block and deployed.",
    ),
    ("standing_in_idle", "Today you stand in for {people}: no task assigned to them or claimed by them is open now."),
    (
        "away_in_force_days",
        "You are away to {last}, your last day away: {substitute} decides the tasks assigned to you.",
    ),
    ("untitled_join", "Join"),
    ("untitled_split", "Split"),
    ("untitled_decide", "Decision"),
    ("untitled_first", "First to arrive"),
    ("calls", "Called processes"),
    ("call_incident", "Open incident in {step}"),
    ("call_task", "Open task in {step}: {task}"),
    ("call_unreadable", "not yours to read"),
    ("file_name", "File name (shown in diagnostics)"),
    ("cause", "What went wrong"),
    ("incidents_more", "The oldest {shown} of {all} open incidents; GET /v1/incidents lists them all."),
    ("incident_retries_out", "Job {job} failed {times}, no retries left: {reason}"),
    (
        "incident_uncaught",
        "Business error {code} reached no error path of this step: correct what it names, then retry",
    ),
    ("failed_once", "once"),
    ("failed_times", "{n} times"),
    ("gross_margin", "Gross margin"),
    ("started", "Started"),
    ("completed", "Completed"),
    ("running", "Running"),
    ("business_key", "Order"),
    ("search", "Search"),
    ("current", "current"),
    ("done", "done"),
    ("kpi", "Figure"),
    ("value", "Value"),
    ("definition", "How it is computed"),
    ("days", "days"),
    ("customer", "Customer"),
    ("amount_range", "Amount"),
    ("ledger", "Ledger entries"),
    ("account", "Account"),
    ("debit", "Debit"),
    ("credit", "Credit"),
    ("deploy", "Deploy a process"),
    ("deploy_button", "Check and deploy"),
    ("deployed", "Deployed"),
    ("diagnostics", "The source does not compile"),
    ("warnings", "Warnings"),
    ("compiler_text", "The compiler's own words, with the source line:"),
    ("flow_source", "Process source (.flow)"),
    ("report", "Report"),
    ("invoice", "Invoice"),
    ("due_date", "Due date"),
    ("days_past_due", "Days past due"),
    ("amount_open", "Open"),
    ("download_csv", "Download as CSV (Excel)"),
    ("only_mine", "Only cases I took part in"),
    ("err_not_a_list", "This report is not a list: there is nothing to download as a spreadsheet."),
    ("customer_no", "Customer ID"),
    ("customer_name", "Customer name"),
    ("days_until_due", "Days until due"),
    ("margin_percent", "Gross margin (%)"),
    ("bucket", "Age"),
    ("revenue", "Revenue"),
    ("cost_of_goods", "Cost of goods"),
    ("gross_profit", "Gross profit"),
    ("total", "Total"),
    ("aging_report", "Receivables aging"),
    ("bucket_not_due", "Not yet due"),
    ("bucket_days", "{range} days overdue"),
    ("bucket_over_90", "Over 90 days overdue"),
    ("bucket_old_0_30", "0-30 days, not yet due included"),
    ("due_today", "due today"),
    ("due_tomorrow", "due tomorrow"),
    ("due_in_days", "due in {n} days"),
    ("total_invoices", "Total · {n} invoices"),
    ("total_one_invoice", "Total · 1 invoice"),
    (
        "aging_recounted",
        "Stored before invoices not yet due had a bucket of their own: the buckets are counted again from the report's invoices.",
    ),
    ("profit_report", "Gross profit by customer"),
    ("weekly_flow", "Invoiced and received by week"),
    ("kpis", "Indicators"),
    ("alerts", "Alerts"),
    ("work_by_role", "Open work by role"),
    ("role", "Role"),
    ("open_tasks", "Open tasks"),
    ("assigned_role", "Assigned to a person"),
    ("no_alerts", "No open alerts."),
    ("acknowledge", "Acknowledge"),
    ("acknowledged_by", "Seen by"),
    ("since", "since"),
    ("threshold", "threshold"),
    ("critical", "Critical"),
    ("warning", "Warning"),
    ("invoiced", "Invoiced"),
    ("received", "Received"),
    ("week_of", "Week of"),
    ("profit_by_order", "Gross profit by order"),
    ("all_states", "All states"),
    ("no_cases", "No order or case matches this search."),
    ("cases_containing", "No order you may see is numbered “{key}”; these numbers contain it."),
    ("no_incidents", "No incident is open: every automated step runs."),
    ("no_sales", "Nothing was sold in this period."),
    ("budget_saved", "Saved: the budget of {cost_centre} for {month} is {amount}."),
    ("err_unknown_bucket", "There is no age group {bucket}: choose one on the finance board."),
    ("no_open_invoices", "No open invoice is left here."),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    // The month's budgets on the board.
    ("budgets", "Budgets by cost centre"),
    ("cost_centre", "Cost centre"),
    ("budget", "Budget"),
    ("reserved", "Reserved by orders"),
    ("over_budget", "Approved over budget"),
    ("left", "Left"),
    ("used", "Used"),
    ("orders", "Orders"),
    ("overspent", "over budget"),
    ("no_budgets", "No budget is set for this month: its orders are not budget-controlled."),
    ("budget_months", "Calendar months on the books' clock ({zone}), as orders draw on them."),
    ("previous_month", "Previous month"),
    ("next_month", "Next month"),
    ("set_budget", "Set a month's budget"),
    ("month", "Month"),
    ("amount", "Amount"),
    ("save_budget", "Save budget"),
    ("bad_amount", "Write the amount as a number that is not negative, with at most two decimals: 250000.00."),
    ("bad_period", "Write the month as 2026-03."),
    ("bad_cost_centre", "A cost centre is 1 to 64 letters, digits, -, _ or ."),
    // A case's history, one sentence per entry.
    ("kind_started", "Started"),
    ("kind_entered", "Reached"),
    ("kind_assigned", "Data recorded"),
    ("kind_decided", "Decided"),
    ("outcome_of", "Outcome of {step}"),
    ("kind_job_completed", "Automatic step done"),
    ("kind_job_failed", "Automatic step failed"),
    ("kind_business_error", "Business error"),
    ("kind_task_completed", "Task completed"),
    ("kind_task_delegated", "Task delegated"),
    ("kind_timer_fired", "Time reached"),
    ("kind_message_received", "Message received"),
    ("kind_child_completed", "Sub-process completed"),
    ("kind_child_failed", "Sub-process failed"),
    ("kind_end_reached", "Reached an end"),
    ("kind_incident_raised", "Incident raised"),
    ("kind_incident_resolved", "Incident resolved"),
    ("kind_completed", "Completed"),
    ("kind_failed", "Failed"),
    ("kind_cancelled", "Cancelled"),
    ("kind_migrated", "Moved to another version"),
    ("kind_modified", "Repaired by hand"),
    ("migrated_text", "Moved from version {from} to {to}: {reason}"),
    ("modified_cancel", "Withdrew the step at {node} by hand: {reason}"),
    ("modified_start", "Started again before {node} by hand: {reason}"),
    ("modified_set", "Set {name} to {value} by hand: {reason}"),
    ("delegated_text", "Task delegated to {to}"),
    // Customer letters.
    ("letters", "Customer letters"),
    ("letters_intro", "The letters the ledger wrote to customers, newest first, and whether they reached them."),
    ("letter_invoice_notice", "Invoice notice"),
    ("letter_dunning_letter", "Dunning letter"),
    ("letter_refund_notice", "Refund notice"),
    ("letter_pending", "Being sent"),
    ("letter_delivered", "Delivered"),
    ("letter_dead", "Not delivered"),
    ("all_letters", "All letters"),
    ("written", "Written"),
    ("letter", "Letter"),
    ("to_address", "To"),
    ("delivery", "Delivery"),
    ("attempts", "{n} attempts"),
    ("attempt_one", "1 attempt"),
    ("last_error", "Last failure: "),
    ("letter_unsent", "Not sent"),
    ("letter_no_channel", "no delivery channel carries it"),
    (
        "letters_no_channel",
        "{n} letters were written but are not being sent: no delivery channel (a webhook or an email route of cloverleaf.toml) carries their kind. Ask your administrator to set one up; they go out then.",
    ),
    (
        "letters_no_channel_one",
        "1 letter was written but is not being sent: no delivery channel (a webhook or an email route of cloverleaf.toml) carries its kind. Ask your administrator to set one up; it goes out then.",
    ),
    ("letter_fail_http", "Sending failed: the receiving system answered an error (HTTP {status})"),
    ("letter_fail_unreachable", "Sending failed: the receiving system could not be reached"),
    ("letter_fail_mail_refused", "Sending failed: the mail server refused the letter (code {code})"),
    ("letter_fail_mail_unreachable", "Sending failed: the mail server could not be reached"),
    (
        "letter_fail_no_address",
        "Not sent: the customer has no valid email address; add one to the customer's master data",
    ),
    ("letter_fail_other", "Sending failed"),
    ("letter_retried", "; it will be retried."),
    ("letter_not_retried", "; it is no longer retried by itself: send it again once the cause is put right."),
    ("send_again", "Send again"),
    ("no_letters", "No letters here."),
    ("not_dead", "This letter needs no second sending: it was delivered, or is still being sent."),
    ("no_address", "no address on the letter"),
    // Notification emails: `{...}` is filled in by the mailer.
    ("mail_hello", "Hello {name},"),
    ("mail_task_created_subject", "New task: {title}"),
    ("mail_task_created", "A task is waiting for you in Cloverleaf."),
    ("mail_task_assigned_subject", "Task handed to you: {title}"),
    ("mail_task_assigned", "This task has been handed to you."),
    ("mail_task_reminder_subject", "Reminder: {title}"),
    ("mail_task_reminder", "This task is still waiting for you."),
    ("mail_task_overdue_subject", "Overdue: {title}"),
    ("mail_task_overdue", "This task is past its due time."),
    ("mail_alert_opened_subject", "Alert: {title}"),
    ("mail_alert_opened", "An alert was raised."),
    ("mail_alert_cleared_subject", "Cleared: {title}"),
    ("mail_alert_cleared", "The condition of this alert has cleared."),
    ("mail_offered_to", "Offered to"),
    ("mail_case", "Case"),
    ("mail_severity", "Severity"),
    ("mail_about", "About"),
    ("mail_indicator", "Indicator"),
    ("mail_value", "Value"),
    ("mail_threshold", "Threshold"),
    ("mail_since", "Since"),
    ("mail_whole_company", "the whole company"),
    ("mail_footer", "Sent by Cloverleaf. Message {id}: a copy with the same number is the same message."),
];

/// Simplified Chinese.
const ZH_CN: &[(&str, &str)] = &[
    ("app", "Cloverleaf 流程平台"),
    ("sign_in", "登录"),
    ("sign_out", "退出"),
    ("token", "访问令牌"),
    ("token_help", "管理员发给您的个人令牌。"),
    ("bad_token", "令牌无效，请核对后重试。"),
    ("user_name", "用户名"),
    ("password", "密码"),
    ("or_token", "或使用访问令牌登录"),
    ("bad_password", "用户名或密码不正确，请核对后重试。"),
    ("too_many_attempts", "该用户名登录失败次数过多，请 15 分钟后再试，或使用访问令牌登录。"),
    ("inbox", "待办"),
    ("instances", "订单与案例"),
    ("board", "财务看板"),
    ("operations", "运维"),
    ("language", "English"),
    ("signed_in_as", "当前用户"),
    ("task", "任务"),
    ("process", "流程"),
    ("due", "截止"),
    ("overdue", "已逾期"),
    ("no_due", "无截止时间"),
    ("state", "状态"),
    ("claimed_by", "认领人"),
    ("barred_from_task", "按职责分离规定，您不能审批此任务"),
    ("assigned_to", "指派给"),
    ("offered_to", "待{roles}认领"),
    ("open_task", "打开"),
    ("no_tasks", "暂无待办。"),
    ("shown_range", "第 {from}–{to} 条，共 {total} 条"),
    ("shown_range_more", "在最新的案例中，您可查看的 {total} 条中的第 {from}–{to} 条；更早的请用筛选条件查找"),
    ("shown_range_newest_letters", "最新 {total} 封中的第 {from}–{to} 封；更早的请按送达情况筛选"),
    ("previous_page", "‹ 上一页"),
    ("next_page", "下一页 ›"),
    ("pages", "分页"),
    ("all_processes", "全部流程"),
    ("only_overdue", "仅看逾期"),
    ("filter", "筛选"),
    ("sort_due", "按截止时间排序"),
    ("claim", "认领"),
    ("unclaim", "释放"),
    ("delegate", "转交给"),
    ("delegate_button", "转交"),
    ("complete", "提交"),
    ("approve", "批准"),
    ("reject", "驳回"),
    ("yes", "是"),
    ("no", "否"),
    ("context", "业务信息"),
    ("form", "您的决定"),
    ("optional", "选填"),
    ("done_task", "已完成：任务已提交。"),
    ("refused", "无法办理"),
    ("sod_refused", "您不能处理此任务：按流程规定，此处须由另一人审批"),
    ("not_candidate", "此任务未分配给您。"),
    ("task_closed", "此任务已被他人完成或撤回。"),
    ("claimed_other", "此任务已被他人认领。"),
    ("invalid_form", "请修改表单"),
    ("done_delegated", "已转交：任务已交由他人办理。"),
    ("sod_not_by", "您不能处理此任务：按流程规定，{who}不得审批此任务。"),
    ("sod_not_by_other", "{user} 不能处理此任务：按流程规定，{who}不得审批此任务。"),
    ("sod_requester", "申请人本人及代其提交申请的人"),
    ("sod_named", "“{label}”所记的人"),
    ("sod_decided", "办理“{step}”的人"),
    ("form_required", "必填"),
    ("form_wrong_number", "请填写数字，例如 1250.00"),
    ("form_wrong_whole", "请填写整数"),
    ("form_wrong_date", "请填写日期，例如 2026-03-31"),
    ("form_wrong_choice", "请选择一项"),
    ("form_wrong_kind", "填写的内容不符合此项要求"),
    ("form_cents", "最多两位小数（精确到分）"),
    ("form_too_large", "数额过大"),
    ("form_greater", "须大于 {n}"),
    ("form_at_least", "须不小于 {n}"),
    ("form_less", "须小于 {n}"),
    ("form_at_most", "须不大于 {n}"),
    ("form_unknown_field", "此表单没有这一项"),
    ("err_role_one", "您无权{action}：仅限{roles}。"),
    ("err_role_any", "您无权{action}：仅限{roles}。"),
    ("do_this", "执行此操作"),
    ("err_not_yours_assigned", "此任务未分配给您：它已指派给他人，而您不是其代理人。"),
    ("err_not_yours_roles", "此任务未分配给您：它只交由{roles}办理，而您不具备该角色。"),
    ("err_delegate_roles", "不能将此任务转交给 {user}：它只交由{roles}办理，而 {user} 不具备该角色。"),
    ("err_not_reader", "您无权查看此案例：您未参与该案例，其流程也未允许您的角色查看。"),
    ("err_no_user_name", "请填写同事的用户名。"),
    ("err_delegation_loop", "不能将此任务转交给 {user}：此人已经手过该任务，转交不能沿原路退回。"),
    ("err_not_claimed", "此任务未被认领，无需释放。"),
    ("err_incident_closed", "此故障已在此期间处理。"),
    ("err_changed", "案例在此期间已有变化，请刷新页面后重试。"),
    ("err_not_found", "找不到{what} {id}。"),
    ("err_not_deployed", "流程 {id} 未部署。"),
    ("err_no_version", "流程 {id} 没有第 {version} 版。"),
    ("err_no_ledger", "本服务器未启用财务子账，没有财务数据和客户函件。"),
    ("thing_case", "案例"),
    ("thing_task", "任务"),
    ("thing_job", "自动任务"),
    ("thing_incident", "未处理的故障"),
    ("thing_report", "报表"),
    ("thing_alert", "预警"),
    ("thing_letter", "客户函件"),
    ("thing_indicator", "指标"),
    ("thing_page", "页面"),
    ("instance", "案例"),
    ("status", "状态"),
    ("variables", "数据"),
    ("history", "历史记录"),
    ("diagram", "当前进度"),
    ("when", "时间"),
    ("started_at", "开始时间"),
    ("what", "事项"),
    ("who", "办理人"),
    ("for_whom", "代表"),
    ("not_found", "未找到"),
    ("no_such_page", "没有地址为 {path} 的页面。"),
    ("archived", "已归档"),
    ("archived_text", "{case} 已办结，并于 {at} 移入归档库 {archive}，记录保存在归档库中。"),
    ("forbidden", "无权访问"),
    ("forbidden_text", "您的角色无权查看此页面。"),
    ("expired", "登录已过期，请重新登录。"),
    ("csrf", "表单已失效或来源不明，请回到页面重新提交。"),
    ("error", "出错了"),
    ("error_text", "服务器未能完成操作，数据未作任何更改；请重试或联系管理员。"),
    ("back", "返回"),
    ("aging", "应收账龄"),
    ("open_receivables", "未收应收款"),
    ("cycle_time", "各流程办理周期"),
    ("hours", "小时"),
    ("sla_breaches", "超时审批"),
    ("incidents", "未处理故障"),
    ("retry", "重试"),
    ("step", "步骤"),
    ("away", "外出代理"),
    ("away_title", "外出期间的代理人"),
    ("away_now", "{from} 至 {until}，由 {substitute} 代您查看并办理指派给您或由您认领的任务。"),
    ("away_days", "{first} 至 {last}（{zone}），由 {substitute} 代您查看并办理指派给您或由您认领的任务。"),
    ("standing_in", "今天您代理 {people}：其任务已在您的待办中。"),
    ("away_in_force", "您正在外出：{until} 之前，指派给您的任务由 {substitute} 代为办理。"),
    ("away_change", "修改或结束"),
    ("away_none", "尚未指定代理人：指派给您的任务将等待您本人处理。"),
    ("away_end", "立即结束代理"),
    ("away_name", "指定代理人"),
    (
        "away_roles",
        "分派给角色的任务仍由该角色的所有成员处理；代理人接手指派给您或由您认领的任务，按您所在时区的整天计算。",
    ),
    ("substitute", "代理人（用户名）"),
    ("away_first_day", "外出首日"),
    ("away_last_day", "外出末日"),
    ("away_save", "指定代理人"),
    ("away_unknown", "“{name}”不是本系统的用户：请填写同事的用户名。"),
    ("away_self", "请指定他人：您不能代理自己。"),
    ("away_bad_days", "请以日期填写外出首日和末日（如 2026-12-31）；末日不能早于首日，也不能已经过去。"),
    ("day_placeholder", "年-月-日"),
    (
        "calendar_unlisted",
        "营业日历“{calendar}”未列出 {years} 年的节假日和调休上班日：在其日历定义中补充并部署之前，这些年份按普通周计算工作日（只看星期几，不含节假日）。",
    ),
    ("standing_in_idle", "今天您代理 {people}：目前没有指派给其本人或由其认领的待办。"),
    ("away_in_force_days", "您正在外出，至 {last}（外出末日）：指派给您的任务由 {substitute} 代为办理。"),
    ("untitled_join", "汇合"),
    ("untitled_split", "并行分支"),
    ("untitled_decide", "判断"),
    ("untitled_first", "先到先行"),
    ("calls", "调用的流程"),
    ("call_incident", "{step}中有未处理故障"),
    ("call_task", "{step}中有待办任务：{task}"),
    ("call_unreadable", "您无权查看"),
    ("file_name", "文件名（用于错误提示）"),
    ("cause", "故障原因"),
    ("incidents_more", "仅显示 {all} 个未处理故障中最早的 {shown} 个；GET /v1/incidents 可列出全部。"),
    ("incident_retries_out", "自动任务 {job} 失败 {times}，重试次数已用完：{reason}"),
    ("incident_uncaught", "业务错误 {code} 没有对应的处理路径：请先修正相关数据，再重试"),
    ("failed_once", "1 次"),
    ("failed_times", "{n} 次"),
    ("gross_margin", "毛利率"),
    ("started", "已发起"),
    ("completed", "已完成"),
    ("running", "进行中"),
    ("business_key", "订单号"),
    ("search", "搜索"),
    ("current", "当前"),
    ("done", "已完成"),
    ("kpi", "指标"),
    ("value", "数值"),
    ("definition", "计算方法"),
    ("days", "天"),
    ("customer", "客户"),
    ("amount_range", "金额"),
    ("ledger", "会计分录"),
    ("account", "科目"),
    ("debit", "借方"),
    ("credit", "贷方"),
    ("deploy", "部署流程"),
    ("deploy_button", "检查并部署"),
    ("deployed", "已部署"),
    ("diagnostics", "流程源文件无法编译"),
    ("warnings", "警告"),
    ("compiler_text", "编译器原文（英文），含源代码行与位置标记："),
    ("flow_source", "流程源文件（.flow）"),
    ("report", "报表"),
    ("invoice", "发票"),
    ("due_date", "到期日"),
    ("days_past_due", "逾期天数"),
    ("amount_open", "未收金额"),
    ("download_csv", "下载 CSV（可用 Excel 打开）"),
    ("only_mine", "仅显示我经手的"),
    ("err_not_a_list", "此报表不是清单，无法下载为表格。"),
    ("customer_no", "客户编号"),
    ("customer_name", "客户名称"),
    ("days_until_due", "距到期天数"),
    ("margin_percent", "毛利率（%）"),
    ("bucket", "账龄"),
    ("revenue", "收入"),
    ("cost_of_goods", "销售成本"),
    ("gross_profit", "毛利"),
    ("total", "合计"),
    ("aging_report", "应收账龄表"),
    ("bucket_not_due", "未到期"),
    ("bucket_days", "逾期 {range} 天"),
    ("bucket_over_90", "逾期 90 天以上"),
    ("bucket_old_0_30", "0-30 天（含未到期）"),
    ("due_today", "今日到期"),
    ("due_tomorrow", "明天到期"),
    ("due_in_days", "{n} 天后到期"),
    ("total_invoices", "合计 · {n} 张发票"),
    ("total_one_invoice", "合计 · 1 张发票"),
    ("aging_recounted", "此报表保存于未到期发票单列之前：下列账龄按报表中的各张发票重新归类。"),
    ("profit_report", "客户毛利表"),
    ("weekly_flow", "按周开票与回款"),
    ("kpis", "指标"),
    ("alerts", "预警"),
    ("work_by_role", "各角色待办"),
    ("role", "角色"),
    ("open_tasks", "待办任务"),
    ("assigned_role", "指派到个人"),
    ("no_alerts", "暂无未关闭的预警。"),
    ("acknowledge", "确认已阅"),
    ("acknowledged_by", "已阅："),
    ("since", "始于"),
    ("threshold", "阈值"),
    ("critical", "严重"),
    ("warning", "警告"),
    ("invoiced", "开票"),
    ("received", "回款"),
    ("week_of", "周（起始日）"),
    ("profit_by_order", "按订单毛利"),
    ("all_states", "全部状态"),
    ("no_cases", "没有符合搜索条件的订单或案例。"),
    ("cases_containing", "您可查看的订单中没有编号为“{key}”的，以下订单号包含该内容。"),
    ("no_incidents", "没有未处理的故障，自动任务均在正常运行。"),
    ("no_sales", "本期间没有销售。"),
    ("budget_saved", "已保存：{cost_centre} 在 {month} 的预算为 {amount}。"),
    ("err_unknown_bucket", "没有账龄分组“{bucket}”，请在财务看板上选择。"),
    ("no_open_invoices", "这里没有未收的发票。"),
    ("failed", "失败"),
    ("cancelled", "已取消"),
    ("budgets", "各成本中心预算"),
    ("cost_centre", "成本中心"),
    ("budget", "预算额"),
    ("reserved", "订单已占用"),
    ("over_budget", "超预算批准"),
    ("left", "剩余"),
    ("used", "使用率"),
    ("orders", "订单数"),
    ("overspent", "已超支"),
    ("no_budgets", "本月未设定预算：本月订单不受预算控制。"),
    ("budget_months", "按账簿时区（{zone}）的日历月计，与订单占用预算的口径一致。"),
    ("previous_month", "上个月"),
    ("next_month", "下个月"),
    ("set_budget", "设定月度预算"),
    ("month", "月份"),
    ("amount", "金额"),
    ("save_budget", "保存预算"),
    ("bad_amount", "金额须为不小于零、最多两位小数的数字，例如 250000.00。"),
    ("bad_period", "月份请写作 2026-03 的形式。"),
    ("bad_cost_centre", "成本中心须为 1 至 64 个字母、数字或 - _ . 字符。"),
    ("kind_started", "发起"),
    ("kind_entered", "进入"),
    ("kind_assigned", "记录数据"),
    ("kind_decided", "判断"),
    ("outcome_of", "{step}的结果"),
    ("kind_job_completed", "自动步骤完成"),
    ("kind_job_failed", "自动步骤失败"),
    ("kind_business_error", "业务异常"),
    ("kind_task_completed", "任务完成"),
    ("kind_task_delegated", "任务转交"),
    ("kind_timer_fired", "到达设定时间"),
    ("kind_message_received", "收到消息"),
    ("kind_child_completed", "子流程完成"),
    ("kind_child_failed", "子流程失败"),
    ("kind_end_reached", "到达终点"),
    ("kind_incident_raised", "发生故障"),
    ("kind_incident_resolved", "故障已处理"),
    ("kind_completed", "已完成"),
    ("kind_failed", "失败"),
    ("kind_cancelled", "已取消"),
    ("kind_migrated", "迁移到其他版本"),
    ("kind_modified", "手工修复"),
    ("migrated_text", "由第 {from} 版迁移到第 {to} 版：{reason}"),
    ("modified_cancel", "手工撤下 {node} 处的步骤：{reason}"),
    ("modified_start", "手工在 {node} 之前重新开始：{reason}"),
    ("modified_set", "手工将{name}改为 {value}：{reason}"),
    ("delegated_text", "任务已转交给 {to}"),
    ("letters", "客户函件"),
    ("letters_intro", "账务系统发给客户的函件（最新的在前），以及是否已送达。"),
    ("letter_invoice_notice", "开票通知"),
    ("letter_dunning_letter", "催款函"),
    ("letter_refund_notice", "退款通知"),
    ("letter_pending", "发送中"),
    ("letter_delivered", "已送达"),
    ("letter_dead", "未能送达"),
    ("all_letters", "全部函件"),
    ("written", "生成时间"),
    ("letter", "函件"),
    ("to_address", "收件地址"),
    ("delivery", "送达情况"),
    ("attempts", "尝试 {n} 次"),
    ("attempt_one", "尝试 1 次"),
    ("last_error", "最近一次失败原因："),
    ("letter_unsent", "未发送"),
    ("letter_no_channel", "未配置发送渠道"),
    (
        "letters_no_channel",
        "有 {n} 封函件已生成但未发送：没有发送渠道（cloverleaf.toml 中的 webhook 或邮件路由）承载这类函件。请联系管理员配置，配置后将自动发出。",
    ),
    (
        "letters_no_channel_one",
        "有 1 封函件已生成但未发送：没有发送渠道（cloverleaf.toml 中的 webhook 或邮件路由）承载这类函件。请联系管理员配置，配置后将自动发出。",
    ),
    ("letter_fail_http", "发送失败：接收方返回错误（HTTP {status}）"),
    ("letter_fail_unreachable", "发送失败：无法连接接收方"),
    ("letter_fail_mail_refused", "发送失败：邮件服务器拒收（代码 {code}）"),
    ("letter_fail_mail_unreachable", "发送失败：无法连接邮件服务器"),
    ("letter_fail_no_address", "未发送：客户主数据中没有有效的电子邮箱"),
    ("letter_fail_other", "发送失败"),
    ("letter_retried", "，系统将自动重试。"),
    ("letter_not_retried", "；系统已停止自动重试，排除原因后请重新发送。"),
    ("send_again", "重新发送"),
    ("no_letters", "暂无函件。"),
    ("not_dead", "此函件无需重新发送：已送达，或仍在发送中。"),
    ("no_address", "函件上无地址"),
    ("mail_hello", "{name}，您好："),
    ("mail_task_created_subject", "新任务：{title}"),
    ("mail_task_created", "Cloverleaf 中有一项任务等待您处理。"),
    ("mail_task_assigned_subject", "任务已转交给您：{title}"),
    ("mail_task_assigned", "这项任务已转交给您处理。"),
    ("mail_task_reminder_subject", "提醒：{title}"),
    ("mail_task_reminder", "这项任务仍在等待您处理。"),
    ("mail_task_overdue_subject", "已逾期：{title}"),
    ("mail_task_overdue", "这项任务已超过办理期限。"),
    ("mail_alert_opened_subject", "预警：{title}"),
    ("mail_alert_opened", "系统发出了一项预警。"),
    ("mail_alert_cleared_subject", "预警解除：{title}"),
    ("mail_alert_cleared", "这项预警的条件已不再成立。"),
    ("mail_offered_to", "办理角色"),
    ("mail_case", "业务单号"),
    ("mail_severity", "级别"),
    ("mail_about", "对象"),
    ("mail_indicator", "指标"),
    ("mail_value", "当前值"),
    ("mail_threshold", "阈值"),
    ("mail_since", "发出时间"),
    ("mail_whole_company", "全公司"),
    ("mail_footer", "本邮件由 Cloverleaf 发送，编号 {id}；编号相同的邮件为同一封。"),
];

/// The names of the reference processes' variables, inputs and form fields in Chinese; other
/// names are shown as [`label`] writes them in English.
const VARIABLES_ZH: &[(&str, &str)] = &[
    ("aging_report", "应收账龄表"),
    ("amount", "金额"),
    ("amount_due", "应收金额"),
    ("approval_outcome", "审批结果"),
    ("approve", "是否批准"),
    ("approve_close", "是否批准结账"),
    ("approve_write_off", "是否批准坏账核销"),
    ("as_of", "截至日期"),
    ("belongs_here", "是否属于本发票"),
    ("budget_left", "剩余预算"),
    ("budget_ok", "预算是否充足"),
    ("budget_reserved", "是否已占用预算"),
    ("carrier", "承运商"),
    ("chase_note", "催发货备注"),
    ("collection_outcome", "催收结果"),
    ("comment", "备注"),
    ("cost_centre", "成本中心"),
    ("cost_of_goods", "销售成本"),
    ("credit_limit", "信用额度"),
    ("customer_id", "客户"),
    ("due_date", "到期日"),
    ("dunning_level", "催款级别"),
    ("fix_note", "开票资料修正说明"),
    ("gross_profit", "毛利"),
    ("invoice_id", "发票编号"),
    ("invoice_number", "发票号码"),
    ("invoice_total", "发票总额（含税）"),
    ("legal_note", "法务备注"),
    ("match_result", "核对结果"),
    ("net", "不含税金额"),
    ("open_ar", "未收应收款"),
    ("order_id", "订单号"),
    ("payment_id", "收款编号"),
    ("profit_report", "客户毛利表"),
    ("promised_date", "客户承诺付款日"),
    ("received", "已收金额"),
    ("reference", "付款附言"),
    ("refund", "是否退款"),
    ("requested_by", "申请人"),
    ("revenue", "收入"),
    ("risk", "风险等级"),
    ("shipment_id", "发货单号"),
    ("tax", "税额"),
    ("tolerance", "允许差额"),
    ("write_off", "是否作坏账核销"),
];

/// A process's title for a reader of `lang`: its Chinese wording (`zh "..."`) where the
/// process gives one.
pub fn process_title(lang: Lang, process: &cloverleaf_dsl::CompiledProcess) -> &str {
    match (lang, &process.title_zh) {
        (Lang::ZhCn, Some(zh)) => zh,
        _ => &process.title,
    }
}

/// What a reader of `lang` calls `role`: its title as `process` carries it from the roles block,
/// its name where the block gives none.
pub fn role_title<'a>(lang: Lang, process: &'a cloverleaf_dsl::CompiledProcess, role: &'a str) -> &'a str {
    match (lang, process.role_titles.get(role)) {
        (Lang::ZhCn, Some(t)) => t.title_zh.as_deref().unwrap_or(&t.title),
        (Lang::En, Some(t)) => &t.title,
        (_, None) => role,
    }
}

/// A task's title for a reader of `lang`: the step's title in their language rendered on the
/// instance's values (see [`render_title`]); the title stored when the task opened (English,
/// money plain) for a step that has none any more.
pub fn task_title(
    lang: Lang,
    process: &cloverleaf_dsl::CompiledProcess,
    instance: &cloverleaf_engine::Instance,
    task: &cloverleaf_engine::store::TaskInfo,
    now: DateTime<Utc>,
) -> String {
    match process.node(&task.node).and_then(|node| node_title(lang, node)) {
        Some(template) => render_title(lang, process, template, instance.variables(), now),
        None => task.title.clone(),
    }
}

/// The variables of a process that hold money (shown with their currency).
pub fn money_variables(definition: &cloverleaf_dsl::CompiledProcess) -> std::collections::BTreeSet<&str> {
    definition
        .inputs
        .iter()
        .chain(&definition.vars)
        .filter(|v| v.ty == cloverleaf_dsl::expr::Type::Money)
        .map(|v| v.name.as_str())
        .collect()
}

/// A title template of `process` rendered on `variables` for a reader of `lang`: as the engine
/// renders it, with a placeholder that names a money variable shown as money (`¥8,000.00`,
/// `CNY 8,000.00`) instead of a bare number.
pub fn render_title(
    lang: Lang,
    process: &cloverleaf_dsl::CompiledProcess,
    template: &str,
    variables: &std::collections::BTreeMap<String, cloverleaf_dsl::expr::Value>,
    now: DateTime<Utc>,
) -> String {
    let money_names = money_variables(process);
    let show = |placeholder: &str, value: &cloverleaf_dsl::expr::Value| match value {
        cloverleaf_dsl::expr::Value::Number(n) if money_names.contains(placeholder) => Some(money(*n, lang)),
        _ => None,
    };
    cloverleaf_engine::render_title_with(template, variables, now, process.calendar.as_ref(), &show)
}

/// `roles` by their titles for a reader of `lang`, listed as the language lists them.
pub fn role_list(lang: Lang, process: &cloverleaf_dsl::CompiledProcess, roles: &[String]) -> String {
    roles.iter().map(|r| role_title(lang, process, r)).collect::<Vec<_>>().join(lang.list_separator())
}

/// The server's own roles (they are in no roles block): (id, English title, Chinese title).
const SERVER_ROLES: &[(&str, &str, &str)] = &[
    ("admin", "Administrator", "管理员"),
    ("auditor", "Auditor", "审计员"),
    ("metrics", "Metrics scraper", "监控采集"),
    ("worker", "Worker", "自动任务执行程序"),
];

/// The organisation's roles as the reference `roles.flow` titles them, for a refusal that names
/// a role with no process at hand: (id, title, Chinese title).
static REFERENCE_ROLES: std::sync::LazyLock<Vec<(String, String, Option<String>)>> = std::sync::LazyLock::new(|| {
    let (file, _) = cloverleaf_dsl::parse(cloverleaf_dsl::FileId(0), include_str!("../../../processes/roles.flow"));
    file.map(|f| f.roles)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.title.map(|title| (r.name.name, title, r.title_zh)))
        .collect()
});

/// What a reader of `lang` calls `role` when no process is at hand: the server's words for its
/// own roles; for the organisation's, the title the deployed processes give it (`deployed`), else
/// the reference roles block's; the name otherwise.
pub fn role_name(lang: Lang, role: &str, deployed: &crate::server::RoleTitles) -> String {
    if let Some((_, en, zh)) = SERVER_ROLES.iter().find(|(r, ..)| *r == role) {
        return (if lang == Lang::ZhCn { zh } else { en }).to_string();
    }
    if let Some(title) = deployed.get(role) {
        return match (lang, &title.title_zh) {
            (Lang::ZhCn, Some(zh)) => zh.clone(),
            _ => title.title.clone(),
        };
    }
    match REFERENCE_ROLES.iter().find(|(r, ..)| r == role) {
        Some((_, _, Some(zh))) if lang == Lang::ZhCn => zh.clone(),
        Some((_, title, _)) => title.clone(),
        None => role.to_string(),
    }
}

/// The codes the reference processes and their jobs write into text variables, in words:
/// (variable, value, English, Chinese).
const VALUE_WORDS: &[(&str, &str, &str, &str)] = &[
    ("match_result", "exact", "Matches the amount due", "与应收金额一致"),
    ("match_result", "partial", "Partial payment", "部分付款"),
    ("match_result", "overpayment", "Over-payment", "多付"),
    ("match_result", "mismatch", "Does not match the invoice", "与发票不符"),
    ("risk", "unknown", "Not rated yet", "尚未评级"),
];

/// The business errors the built-in job handlers raise, in words: (code, English, Chinese).
const BUSINESS_ERRORS: &[(&str, &str, &str)] = &[
    ("invalid_input", "a job's input is missing or malformed", "任务输入缺失或格式有误"),
    ("customer_blocked", "the customer is blocked", "客户已被冻结"),
    ("invoice_data", "the invoice's master data is incomplete", "开票主数据不完整"),
    ("customer_unknown", "the customer is not in the master data", "客户主数据中没有该客户"),
    ("invoice_unknown", "there is no such invoice", "没有该发票"),
    ("payment_unknown", "there is no such payment", "没有该笔收款"),
    ("product_unknown", "there is no such product", "没有该产品"),
    ("period_closed", "the accounting period is closed", "会计期间已结账"),
    ("invalid_amount", "the amount is not valid", "金额无效"),
    ("write_off_refused", "the write-off was refused", "坏账核销被拒"),
];

/// What business error `code` means, for a reader of `lang`; `None` for a code of a handler
/// this server does not know.
pub fn business_error(lang: Lang, code: &str) -> Option<&'static str> {
    BUSINESS_ERRORS.iter().find(|(c, ..)| *c == code).map(|(_, en, zh)| match lang {
        Lang::En => *en,
        Lang::ZhCn => *zh,
    })
}

/// Variable `name`'s code `value` in a reader's words, where the catalogue knows it.
pub fn value_word(lang: Lang, name: &str, value: &str) -> Option<&'static str> {
    VALUE_WORDS.iter().find(|(n, v, _, _)| *n == name && *v == value).map(|(_, _, en, zh)| match lang {
        Lang::En => *en,
        Lang::ZhCn => *zh,
    })
}

/// Items as a reader of `lang` lists alternatives: `A, B or C`, `A、B或C`.
pub fn or_list(lang: Lang, items: &[String]) -> String {
    let (separator, or) = if lang == Lang::ZhCn { ("、", "或") } else { (", ", " or ") };
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{}{or}{last}", rest.join(separator)),
    }
}

/// What the API's permission checks say a caller may not do (`may not read the finance
/// reports`), in Chinese.
const ACTIONS_ZH: &[(&str, &str)] = &[
    ("read the finance reports", "查看财务报表"),
    ("set a budget", "设定预算"),
    ("read the customer letters", "查看客户函件"),
    ("send customer letters again", "重新发送客户函件"),
    ("read the alerts", "查看预警"),
    ("acknowledge alerts", "确认预警"),
    ("evaluate the alert rules", "评估预警规则"),
    ("deploy processes", "部署流程"),
    ("list incidents", "查看故障"),
    ("retry incidents", "重试故障"),
    ("cancel instances", "取消案例"),
    ("modify instances", "手工修改案例"),
    ("migrate instances", "迁移案例"),
    ("read the notifications", "查看通知"),
    ("retry notifications", "重试通知"),
    ("read the metrics", "查看运行指标"),
    ("send messages", "发送消息"),
];

/// A refused action (`read the finance reports`) for a reader of `lang`; `None` for one the
/// catalogue does not word in that language.
pub fn action(lang: Lang, english: &str) -> Option<String> {
    match lang {
        Lang::En => Some(english.to_string()),
        Lang::ZhCn => ACTIONS_ZH.iter().find(|(en, _)| *en == english).map(|(_, zh)| (*zh).to_string()),
    }
}

/// A node's title template (placeholders not yet filled) for a reader of `lang`, if it has one.
pub fn node_title(lang: Lang, node: &cloverleaf_dsl::model::Node) -> Option<&str> {
    match (lang, &node.title_zh) {
        (Lang::ZhCn, Some(zh)) => Some(zh),
        _ => node.title.as_deref(),
    }
}

/// The word for a kind of step (`decide`, `approval`, ...) for a reader of `lang`.
pub fn node_kind(lang: Lang, kind: &cloverleaf_dsl::model::NodeKind) -> &'static str {
    use cloverleaf_dsl::model::NodeKind;
    if lang == Lang::En {
        // What a business reader calls the kind, not the language's keyword (`decide`, `set`).
        return match kind {
            NodeKind::Start { .. } => "Start",
            NodeKind::End { .. } => "End",
            NodeKind::Task { .. } => "Automated step",
            NodeKind::Approval { .. } => "Approval",
            NodeKind::Set { .. } => "Set values",
            NodeKind::Decide { .. } => "Decision",
            NodeKind::Split { .. } => "Parallel",
            NodeKind::Join { .. } => "Join",
            NodeKind::First { .. } => "First to arrive",
            NodeKind::Receive { .. } => "Wait for a message",
            NodeKind::Wait { .. } => "Wait",
            NodeKind::Call { .. } => "Call a process",
        };
    }
    match kind {
        NodeKind::Start { .. } => "开始",
        NodeKind::End { .. } => "结束",
        NodeKind::Task { .. } => "自动任务",
        NodeKind::Approval { .. } => "审批",
        NodeKind::Set { .. } => "赋值",
        NodeKind::Decide { .. } => "判断",
        NodeKind::Split { .. } => "并行",
        NodeKind::Join { .. } => "汇合",
        NodeKind::First { .. } => "先到先行",
        NodeKind::Receive { .. } => "等待消息",
        NodeKind::Wait { .. } => "等待",
        NodeKind::Call { .. } => "调用流程",
    }
}

/// The sub-ledger's chart of accounts in Chinese, by account code and English name.
const ACCOUNTS_ZH: &[(&str, &str, &str)] = &[
    ("1000", "Bank", "银行存款"),
    ("1200", "Accounts receivable", "应收账款"),
    ("1300", "Inventory", "库存商品"),
    ("2000", "Accounts payable", "应付账款"),
    ("2200", "VAT payable", "应交增值税"),
    ("2300", "Unapplied customer cash", "待核销客户款项"),
    ("3000", "Opening balance equity", "期初权益"),
    ("4000", "Revenue", "主营业务收入"),
    ("5000", "Cost of goods sold", "主营业务成本"),
    ("6800", "Bad debt expense", "坏账损失"),
    ("6900", "Payment differences", "收款差额"),
];

/// An account's name for a reader of `lang`: the chart's Chinese name for an account of the
/// standard chart; an account named otherwise keeps the name it was given.
pub fn account_name<'a>(lang: Lang, code: &str, name: &'a str) -> &'a str {
    match lang {
        Lang::ZhCn => ACCOUNTS_ZH.iter().find(|(c, en, _)| *c == code && *en == name).map_or(name, |(.., zh)| zh),
        Lang::En => name,
    }
}

/// A variable's label for a reader of `lang`: its Chinese name from `VARIABLES_ZH`, else its
/// name as an English label (`customer_id` is "Customer ID", `open_ar` "Open AR").
pub fn label(name: &str, lang: Lang) -> String {
    if lang == Lang::ZhCn
        && let Some((_, zh)) = VARIABLES_ZH.iter().find(|(k, _)| *k == name)
    {
        return (*zh).to_string();
    }
    let words: Vec<&str> = name
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "id" => "ID",
            "ar" => "AR",
            other => other,
        })
        .collect();
    let text = words.join(" ");
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// [`label`] inside a sentence: in English its first word in lower case, unless it is an
/// abbreviation ("Set amount to …", "Set AR days to …").
pub fn label_in_sentence(name: &str, lang: Lang) -> String {
    let label = label(name, lang);
    let first = label.split(' ').next().unwrap_or_default();
    if lang == Lang::ZhCn || first.chars().all(|c| !c.is_lowercase()) {
        return label;
    }
    let mut chars = label.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// An indicator's name and formula for a reader of `lang`: the catalogue's own words in
/// English, a translation in Chinese.
pub fn kpi(lang: Lang, key: &str) -> (&'static str, &'static str) {
    let english = cloverleaf_finance::ledger::kpi::definition(key)
        .map(|d| (d.name, d.formula))
        .or_else(|| PROCESS_KPI.iter().find(|(k, ..)| *k == key).map(|(_, name, formula, _, _)| (*name, *formula)))
        .unwrap_or(("", ""));
    let chinese = KPI_ZH
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, name, formula)| (*name, *formula))
        .or_else(|| PROCESS_KPI.iter().find(|(k, ..)| *k == key).map(|(_, _, _, name, formula)| (*name, *formula)));
    match lang {
        Lang::En => english,
        Lang::ZhCn => chinese.unwrap_or(english),
    }
}

/// The process figures the alert rules may judge: (key, English name and formula, Chinese name
/// and formula).
const PROCESS_KPI: &[(&str, &str, &str, &str, &str)] = &[
    (
        "approvals_past_due",
        "Approvals past due",
        "open human tasks past their due time",
        "逾期未办审批",
        "已过期限仍未办理的人工任务数",
    ),
    (
        "open_incidents",
        "Open incidents",
        "jobs out of retries and stuck joins waiting for an operator",
        "未处理异常",
        "重试用尽或流程卡住、等待运维处理的异常数",
    ),
    (
        "oldest_incident_age",
        "Oldest open incident",
        "days the oldest open incident has waited for an operator",
        "最久未处理异常",
        "最早一个未处理异常已等待的天数",
    ),
];

/// The indicator catalogue in Simplified Chinese: (key, name, formula).
const KPI_ZH: &[(&str, &str, &str)] = &[
    ("open_receivables", "未收应收款", "截至当日各发票未结余额之和"),
    ("overdue_receivables", "逾期应收款", "截至当日已过到期日的发票未结余额"),
    ("days_sales_outstanding", "应收账款周转天数", "未收应收款 ÷ 截至当日 90 天内开票额（含税）× 90"),
    ("revenue", "收入", "期间内收入科目贷方 − 借方（不含税）"),
    ("gross_profit", "毛利", "期间内收入 − 销售成本"),
    ("gross_margin", "毛利率", "期间内（收入 − 销售成本）÷ 收入"),
    ("bad_debt_rate", "坏账率", "期间内作坏账核销的应收款 ÷ 收入"),
    ("invoiced", "开票额", "期间内按开票日计的发票金额（含税）"),
    ("cash_received", "回款额", "期间内按银行到账日计的客户付款"),
    ("auto_match_rate", "自动匹配率", "期间内到账且无需人工核对即自动匹配的收款 ÷ 已匹配的收款"),
];

/// The currency amounts are booked in.
pub use cloverleaf_finance::ledger::CURRENCY;

/// An amount as a reader of `lang` writes it: `CNY 24,500.00` or `¥24,500.00`; credits keep
/// their sign in front of the currency (the customer letters write amounts the same way).
pub fn money(amount: Decimal, lang: Lang) -> String {
    use cloverleaf_finance::ledger::wording::{Language, amount_text};
    amount_text(
        amount,
        match lang {
            Lang::En => Language::En,
            Lang::ZhCn => Language::ZhCn,
        },
    )
}

/// A time as a reader in `zone` reads it, with the zone named: `2026-01-31 18:00 (Asia/Shanghai)`,
/// `2026-01-31 18:00（北京时间）`.
pub fn time(at: DateTime<Utc>, zone: Tz, lang: Lang) -> String {
    let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M");
    match lang {
        Lang::En => format!("{local} ({})", zone.name()),
        Lang::ZhCn => format!("{local}（{}）", zone_name(zone, lang)),
    }
}

/// What a reader of `lang` calls a time zone: in Chinese 北京时间 for China's, a city's time for
/// the zones a Chinese company's partners mostly keep; otherwise (and in English) its IANA name.
pub fn zone_name(zone: Tz, lang: Lang) -> &'static str {
    if lang == Lang::En {
        return zone.name();
    }
    match zone.name() {
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Chungking" | "Asia/Harbin" | "PRC" => "北京时间",
        "Asia/Hong_Kong" | "Hongkong" => "香港时间",
        "Asia/Macau" | "Asia/Macao" => "澳门时间",
        "Asia/Taipei" | "ROC" => "台北时间",
        "Asia/Singapore" | "Singapore" => "新加坡时间",
        "Asia/Tokyo" | "Japan" => "东京时间",
        "Asia/Seoul" | "ROK" => "首尔时间",
        "Europe/London" => "伦敦时间",
        "Europe/Berlin" => "柏林时间",
        "Europe/Paris" => "巴黎时间",
        "America/New_York" => "纽约时间",
        "America/Los_Angeles" => "洛杉矶时间",
        "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Universal" | "Zulu" | "Etc/Zulu" => "协调世界时",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_shows_money_placeholders_as_money_in_the_readers_language() {
        let source = "process wo \"Write-off\" {\n  input { invoice_id: text\n    amount_due: money\n    days: int }\n  \
                      start -> done\n  end done \"Done\"\n}\n";
        let mut project = cloverleaf_dsl::Project::new();
        project.add("wo.flow", source);
        let compiled = project.compile();
        let process = compiled.process("wo").unwrap_or_else(|| panic!("{}", compiled.render()));
        let variables = std::collections::BTreeMap::from([
            ("invoice_id".to_string(), cloverleaf_dsl::expr::Value::Text("INV-7".into())),
            ("amount_due".to_string(), cloverleaf_dsl::expr::Value::Number("8000".parse().unwrap())),
            ("days".to_string(), cloverleaf_dsl::expr::Value::Number("12000".parse().unwrap())),
        ]);
        let template = "Write off {amount_due} on invoice {invoice_id} after {days} days, {amount_due * 2}";
        let now = chrono::Utc::now();
        assert_eq!(
            render_title(Lang::En, process, template, &variables, now),
            "Write off CNY 8,000.00 on invoice INV-7 after 12000 days, 16000"
        );
        assert_eq!(
            render_title(Lang::ZhCn, process, "将发票 {invoice_id} 的 {amount_due} 作坏账核销", &variables, now),
            "将发票 INV-7 的 ¥8,000.00 作坏账核销"
        );
    }

    #[test]
    fn every_indicator_has_its_words_in_both_languages() {
        for definition in &cloverleaf_finance::ledger::kpi::CATALOGUE {
            assert_eq!(kpi(Lang::En, definition.key), (definition.name, definition.formula));
            let (name, formula) = kpi(Lang::ZhCn, definition.key);
            assert!(name != definition.name && formula != definition.formula, "{} untranslated", definition.key);
        }
        assert!(
            KPI_ZH.iter().all(|(k, _, _)| cloverleaf_finance::ledger::kpi::definition(k).is_some()),
            "no stale key"
        );
    }

    #[test]
    fn times_name_their_zone_as_the_reader_calls_it() {
        let at = DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(time(at, chrono_tz::Asia::Shanghai, Lang::ZhCn), "2026-01-31 18:00（北京时间）");
        assert_eq!(time(at, chrono_tz::Asia::Shanghai, Lang::En), "2026-01-31 18:00 (Asia/Shanghai)");
        assert_eq!(time(at, chrono_tz::UTC, Lang::ZhCn), "2026-01-31 10:00（协调世界时）");
        assert_eq!(time(at, chrono_tz::Europe::Amsterdam, Lang::ZhCn), "2026-01-31 11:00（Europe/Amsterdam）");
    }

    #[test]
    fn every_key_is_in_both_catalogues() {
        for (key, _) in EN {
            assert!(ZH_CN.iter().any(|(k, _)| k == key), "`{key}` has no Chinese text");
        }
        for (key, _) in ZH_CN {
            assert!(EN.iter().any(|(k, _)| k == key), "`{key}` has no English text");
        }
    }

    #[test]
    fn a_variable_without_a_chinese_name_reads_as_an_english_label() {
        assert_eq!(label("customer_id", Lang::En), "Customer ID");
        assert_eq!(label("open_ar", Lang::En), "Open AR");
        assert_eq!(label("approve_write_off", Lang::En), "Approve write off");
        assert_eq!(label("id", Lang::En), "ID");
        assert_eq!(label("_odd__name_", Lang::En), "Odd name");
        assert_eq!(label("", Lang::En), "");
        assert_eq!(label("dunning_level", Lang::ZhCn), "催款级别");
        assert_eq!(label("not_in_the_table", Lang::ZhCn), "Not in the table");
    }

    #[test]
    fn money_reads_naturally_in_each_language() {
        let amount: Decimal = "24500".parse().unwrap();
        assert_eq!(money(amount, Lang::En), "CNY 24,500.00");
        assert_eq!(money(amount, Lang::ZhCn), "¥24,500.00");
        assert_eq!(money("-1234567.5".parse().unwrap(), Lang::En), "-CNY 1,234,567.50");
        assert_eq!(money("0.3".parse().unwrap(), Lang::ZhCn), "¥0.30");
        assert_eq!(money("999".parse().unwrap(), Lang::En), "CNY 999.00");
    }

    #[test]
    fn times_are_shown_in_the_readers_zone() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 31, 10, 0, 0).unwrap();
        assert_eq!(time(at, chrono_tz::Asia::Shanghai, Lang::En), "2026-01-31 18:00 (Asia/Shanghai)");
        assert_eq!(time(at, chrono_tz::UTC, Lang::En), "2026-01-31 10:00 (UTC)");
    }

    #[test]
    fn roles_without_a_process_are_named_by_their_titles() {
        let none = crate::server::RoleTitles::new();
        assert_eq!(role_name(Lang::ZhCn, "finance.cfo", &none), "财务总监");
        assert_eq!(role_name(Lang::En, "finance.cfo", &none), "Chief financial officer");
        assert_eq!(role_name(Lang::ZhCn, "admin", &none), "管理员");
        assert_eq!(role_name(Lang::En, "qa.tester", &none), "qa.tester");
        // A deployed roles block's title comes first; a server role keeps the server's word.
        let title = |en: &str, zh: Option<&str>| cloverleaf_dsl::model::RoleTitle {
            title: en.to_string(),
            title_zh: zh.map(str::to_string),
        };
        let deployed: crate::server::RoleTitles = [
            ("qa.tester".to_string(), title("Quality tester", Some("质检员"))),
            ("finance.cfo".to_string(), title("Finance director", None)),
            ("admin".to_string(), title("Root", None)),
        ]
        .into();
        assert_eq!(role_name(Lang::ZhCn, "qa.tester", &deployed), "质检员");
        assert_eq!(role_name(Lang::En, "qa.tester", &deployed), "Quality tester");
        assert_eq!(role_name(Lang::ZhCn, "finance.cfo", &deployed), "Finance director");
        assert_eq!(role_name(Lang::En, "admin", &deployed), "Administrator");
        let roles = ["管理员".to_string(), "审计员".to_string(), "财务总监".to_string()];
        assert_eq!(or_list(Lang::ZhCn, &roles), "管理员、审计员或财务总监");
        assert_eq!(or_list(Lang::En, &roles[..1]), "管理员");
    }

    #[test]
    fn the_language_follows_the_browser_unless_chosen() {
        assert_eq!(Lang::from_accept("zh-CN,zh;q=0.9,en;q=0.8"), Lang::ZhCn);
        assert_eq!(Lang::from_accept("de-DE,en;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept(""), Lang::En);
        assert_eq!(Lang::parse("zh-Hans"), Some(Lang::ZhCn));
    }
}
