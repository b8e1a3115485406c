//! A compiler's diagnostics as the deploy page shows them to a Chinese reader: each one's place
//! and what its code means in Chinese, listed above the compiler's own text (English, with the
//! source line and a caret), which stays the reference. An English reader reads that text alone.

use std::fmt::Write as _;

use serde_json::Value;

use super::esc;
use super::i18n::Lang;

/// What each diagnostic code means, in Chinese, as a process designer reads it (the catalogue
/// is `cloverleaf_dsl::codes`).
const SUMMARIES_ZH: &[(&str, &str)] = &[
    ("E0001", "文本不符合语法"),
    ("E0002", "嵌套过深（或连用的运算符过多），编译器无法处理"),
    ("E0101", "`->` 指向的节点不存在"),
    ("E0102", "同一范围内有两个同名的定义"),
    ("E0103", "表达式或映射用到了未声明的变量"),
    ("E0104", "角色未在任何 `roles` 块中声明"),
    ("E0105", "`call` 调用的流程不在项目中"),
    ("E0106", "没有这个内置函数"),
    ("E0107", "记录类型没有这个字段"),
    ("E0108", "没有这个类型名称"),
    ("E0109", "流程或角色引用的日历未在任何 `calendar` 块中声明"),
    ("E0201", "值的类型与所在位置要求的类型不符"),
    ("E0202", "条件不是布尔值"),
    ("E0203", "函数调用的参数个数不对"),
    ("E0301", "cron 计划无效"),
    ("E0302", "没有这个时区名称"),
    ("E0303", "字面值格式有误（日期、时长或数量）"),
    ("E0304", "`calendar` 块有误（星期、时间、日期、时段，或相互冲突的日子）"),
    ("E0305", "审批按工作时间计时，但其角色使用不同的日历"),
    ("E0401", "缺少必需的子句（任务没有 `job`、节点没有 `->`、流程没有开始）"),
    ("E0402", "从任何开始都到达不了这个节点"),
    ("E0403", "从这个节点出发没有通往结束的路径"),
    ("E0404", "没有 `otherwise` 的 decide，其条件可能全部不成立"),
    ("E0405", "汇合节点在等待永远不会到来的分支"),
    ("E0406", "并行拆分的分支从未汇合"),
    ("E0407", "不同并行分支的路径在汇合节点之外合流"),
    ("E0408", "循环中从不等待人工、消息或定时器"),
    ("E0409", "子句写在了不允许的位置"),
    ("E0410", "流程按工作日或工作时间计时，却没有指定日历"),
    ("W0501", "decide 中的金额区间相互重叠"),
    ("W0502", "decide 中的金额区间之间留有空缺"),
    ("W0503", "审批既没有到期时间，也没有升级"),
    ("W0504", "循环中只有自动步骤"),
    ("W0505", "声明的角色从未使用，或变量从未被读取"),
    ("W0506", "前面的错误使后续检查无从进行，已跳过"),
    ("W0507", "诊断过多，其余只计数不列出"),
    ("E0601", "预警规则引用的指标不在指标目录中"),
    ("E0602", "预警规则的阈值与指标的单位不符"),
    ("E0603", "预警规则按指标不支持的维度拆分"),
    ("E0604", "预警规则通知的角色未在项目中声明"),
    ("E0701", "导入的内容不是格式正确的 XML，或不是 BPMN 2.0 文档"),
    ("E0702", "导入无法转换这个 BPMN 元素或事件定义"),
    ("E0703", "这个 BPMN 表达式、定时器或值无法转换为 `.flow`"),
    ("E0704", "BPMN 元素缺少 `.flow` 节点所需的内容（作业类型、关联键或流转）"),
    ("W0508", "导入根据变量的用法推测了它的类型"),
];

/// What `code` means, in Chinese; `None` for a code the catalogue does not hold.
pub fn summary_zh(code: &str) -> Option<&'static str> {
    SUMMARIES_ZH.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
}

/// The diagnostics (the API's `DiagnosticView`s as JSON) as a list for a reader of `lang`: for a
/// Chinese reader, each one's line, column, code and meaning; nothing for an English reader, whom
/// the compiler's own text serves.
pub fn summary_list(lang: Lang, diagnostics: &[Value]) -> String {
    if lang != Lang::ZhCn || diagnostics.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ol class=\"diagnostic-summary\">");
    for d in diagnostics {
        let code = d["code"].as_str().unwrap_or_default();
        let kind = if d["severity"].as_str() == Some("warning") { "警告" } else { "错误" };
        // A code outside the catalogue keeps the compiler's one-line summary.
        let meaning = summary_zh(code).map_or_else(|| esc(d["message"].as_str().unwrap_or_default()), esc);
        let _ = write!(
            out,
            "<li><span class=\"where\">第 {} 行第 {} 列</span> {kind} <code>{}</code>：{meaning}</li>",
            d["line"].as_u64().unwrap_or(0),
            d["column"].as_u64().unwrap_or(0),
            esc(code),
        );
    }
    out.push_str("</ol>");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_code_of_the_catalogue_has_its_meaning_in_chinese() {
        for code in cloverleaf_dsl::codes::ALL {
            assert!(summary_zh(code).is_some(), "{code} has no Chinese summary");
        }
        assert_eq!(SUMMARIES_ZH.len(), cloverleaf_dsl::codes::ALL.len(), "a summary for a code that does not exist");
    }

    #[test]
    fn a_chinese_reader_gets_each_diagnostic_placed_and_explained() {
        let diagnostics = [
            json!({"code": "E0101", "severity": "error", "line": 7, "column": 15, "message": "unknown node `shipp`"}),
            json!({"code": "W0503", "severity": "warning", "line": 9, "column": 3, "message": "no due date"}),
            json!({"code": "E9999", "severity": "error", "line": 1, "column": 1, "message": "a <new> problem"}),
        ];
        let list = summary_list(Lang::ZhCn, &diagnostics);
        assert!(list.contains("第 7 行第 15 列</span> 错误 <code>E0101</code>：`-&gt;` 指向的节点不存在"), "{list}");
        assert!(list.contains("第 9 行第 3 列</span> 警告 <code>W0503</code>：审批既没有到期时间"), "{list}");
        assert!(list.contains("<code>E9999</code>：a &lt;new&gt; problem"), "{list}");
        assert_eq!(summary_list(Lang::En, &diagnostics), "");
    }
}
