"""Every word a report shows, in English and Simplified Chinese, and their date formats.

`t(lang, key, **values)` formats one message; a key missing in a language is a bug (a test
checks both catalogues have the same keys and placeholders).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

LANGUAGES = ("en", "zh-CN")

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # headings
        "title": "Status report",
        "closing_title": "Closing report",
        "health": "Health",
        "progress": "Progress",
        "completed": "Completed this period",
        "in_progress": "In progress",
        "upcoming": "Coming next",
        "overdue": "Overdue",
        "blocked": "Blocked",
        "needs_client_input": "Waiting for client input",
        "change_requests": "Change requests",
        "scope_change": "Scope change",
        "milestones": "Milestones",
        "forecast": "Forecast",
        "burnup": "Burn-up",
        "gantt": "Timeline",
        "changes": "Changes since the last report",
        "sources": "Data sources",
        "closing": "Outcome",
        "lessons": "Lessons learned",
        "feedback": "Client feedback",
        # header fields
        "client": "Client",
        "period": "Period",
        "generated": "Generated",
        "audience": "Audience",
        "audience_client": "client",
        "audience_internal": "internal",
        "target_date": "Target date",
        "overridden": "set by the project manager",
        # table columns
        "col_key": "Key",
        "col_title": "Title",
        "col_status": "Status",
        "col_due": "Due",
        "col_assignee": "Assignee",
        "col_completed": "Completed",
        "col_days_overdue": "Days overdue",
        "col_days_blocked": "Days blocked",
        "col_estimate": "Estimate",
        "col_milestone": "Milestone",
        "col_percent": "Done",
        "col_forecast": "Forecast (P85)",
        "col_state": "State",
        "col_source": "Source",
        "col_kind": "Kind",
        "col_last_synced": "Last synced",
        "col_items": "Items",
        "col_score": "Score",
        "col_comment": "Comment",
        "col_day": "Date",
        "col_change": "Change",
        # sentences
        "none": "None.",
        "more": "and {count} more",
        "more_link": "full list",
        "progress_line": "{done} of {live} items done ({percent}); {in_progress} in progress, {todo} to do, {cancelled} cancelled.",
        "progress_estimate": "By estimate: {done} of {total} done ({percent}).",
        "progress_delta": "Change since {since}: {done} done, {total} in scope, {percent} percentage points.",
        "forecast_line": "At the recent pace ({rate} items a day from {start} to {end}), the {remaining} open items are done by {p50} (50% likely), {p85} (85%) or {p95} (95%).",
        "forecast_target": "Chance of finishing by the target date {target}: {probability}.",
        "forecast_none": "No forecast: {reason}.",
        "scope_line": "Since the baseline of {baseline}: {added} items added ({estimate_added} estimate), {removed} removed ({estimate_removed} estimate).",
        "scope_none": "No scope baseline is set (start_date or baseline_date).",
        "changes_line": "Since {since}: {completed} completed, {added} added, {reopened} reopened, {cancelled} cancelled, {removed} removed. Then: {done_then} of {total_then} items done.",
        "changes_basis_publication": "the last published report",
        "changes_basis_previous_period": "the previous period",
        "change_completed": "completed",
        "change_added": "added",
        "change_reopened": "reopened",
        "change_cancelled": "cancelled",
        "change_removed": "removed",
        "scope_added": "added",
        "scope_removed": "removed",
        "never": "never",
        "gantt_more": "{count} more milestones and epics are not drawn.",
        "chart_scope": "Scope",
        "chart_done": "Done",
        "chart_items": "Items",
        "chart_target": "Target",
        "chart_forecast": "Forecast P85",
        "chart_period": "This period",
        "chart_none": "Nothing to draw yet.",
        "closing_planned": "Planned",
        "closing_actual": "Actual",
        "closing_start": "Start",
        "closing_end": "End",
        "closing_slip": "Slip",
        "closing_outcome": "{done} items done, {cancelled} cancelled, {open} left open.",
        "closing_throughput": "Throughput: {rate} items a week.",
        "closing_cycle": "Cycle time (start to done, {count} items): median {p50}, 85th percentile {p85}, mean {mean}.",
        "closing_feedback": "{count} feedback scores, average {average} of 5.",
        "closing_no_feedback": "No client feedback was recorded.",
        "slip_days": "{days} late",
        "slip_early": "{days} early",
        "slip_none": "on time",
        "footer": "Built by pmsync from the data synced from the sources above.",
        # health reasons
        "reason_override": "Set by the project manager: {note}",
        "reason_override_no_note": "Set by the project manager.",
        "reason_rules_say": "The rules alone give: {status}.",
        "reason_complete": "All {done} items are done.",
        "reason_empty": "No items are in scope yet.",
        "reason_target_passed": "The target date {target} has passed with {open} items open.",
        "reason_p50_late": "Even the median forecast ({p50}) is after the target date {target}.",
        "reason_p85_late": "The 85% forecast ({p85}) is after the target date {target}.",
        "reason_p85_ok": "The 85% forecast ({p85}) is on or before the target date {target}.",
        "reason_no_forecast": "No forecast against the target date: {why}.",
        "reason_no_target": "No target date is set.",
        "reason_milestone_late": "Milestone {name} is {days} past its due date {due}.",
        "reason_blockers": "{count} open blocked items; the oldest has been blocked for {days}.",
        "reason_never_synced": "Source {source} has never been synced.",
        "reason_stale": "Source {source} was last synced {when}, longer ago than the schedule allows ({allowed}).",
        "reason_all_clear": "No late milestones, no item blocked for {days} or more, and the data is current.",
        # forecast reasons
        "fc_too_little_history": "too little history: {completed} items completed in the last {days} (at least {min} are needed)",
        "fc_short_window": "only {days} of history (at least {min} are needed)",
        "fc_nothing_left": "no open items remain",
        "fc_beyond_horizon": "at the recent pace some completion dates are more than ten years away",
        # words
        "health_on_track": "On track",
        "health_at_risk": "At risk",
        "health_off_track": "Off track",
        "health_complete": "Complete",
        "cat_todo": "To do",
        "cat_in_progress": "In progress",
        "cat_done": "Done",
        "cat_cancelled": "Cancelled",
        "state_done": "Done",
        "state_on_track": "On track",
        "state_at_risk": "At risk",
        "state_late": "Late",
        "kind_milestone": "Milestone",
        "kind_epic": "Epic",
    },
    "zh-CN": {
        "title": "项目状态报告",
        "closing_title": "项目结项报告",
        "health": "健康状况",
        "progress": "进度",
        "completed": "本期完成",
        "in_progress": "进行中",
        "upcoming": "即将到期",
        "overdue": "已逾期",
        "blocked": "受阻",
        "needs_client_input": "等待客户反馈",
        "change_requests": "变更请求",
        "scope_change": "范围变更",
        "milestones": "里程碑",
        "forecast": "预测",
        "burnup": "燃起图",
        "gantt": "时间线",
        "changes": "自上次报告以来的变化",
        "sources": "数据来源",
        "closing": "项目成果",
        "lessons": "经验教训",
        "feedback": "客户反馈",
        "client": "客户",
        "period": "报告期",
        "generated": "生成时间",
        "audience": "读者",
        "audience_client": "客户",
        "audience_internal": "内部",
        "target_date": "目标日期",
        "overridden": "由项目经理设定",
        "col_key": "编号",
        "col_title": "标题",
        "col_status": "状态",
        "col_due": "截止日期",
        "col_assignee": "负责人",
        "col_completed": "完成时间",
        "col_days_overdue": "逾期天数",
        "col_days_blocked": "受阻天数",
        "col_estimate": "估算",
        "col_milestone": "里程碑",
        "col_percent": "完成率",
        "col_forecast": "预测（P85）",
        "col_state": "状态",
        "col_source": "来源",
        "col_kind": "类型",
        "col_last_synced": "最近同步",
        "col_items": "事项数",
        "col_score": "评分",
        "col_comment": "意见",
        "col_day": "日期",
        "col_change": "变化",
        "none": "无。",
        "more": "另有 {count} 项",
        "more_link": "完整列表",
        "progress_line": "已完成 {done} / {live} 项（{percent}）；进行中 {in_progress} 项，待办 {todo} 项，已取消 {cancelled} 项。",
        "progress_estimate": "按估算：已完成 {done} / {total}（{percent}）。",
        "progress_delta": "自 {since} 以来的变化：完成 {done} 项，范围 {total} 项，完成率 {percent} 个百分点。",
        "forecast_line": "按近期速度（{start} 至 {end} 平均每天完成 {rate} 项），剩余 {remaining} 项预计于 {p50}（50% 把握）、{p85}（85% 把握）或 {p95}（95% 把握）前完成。",
        "forecast_target": "在目标日期 {target} 前完成的概率：{probability}。",
        "forecast_none": "暂无预测：{reason}。",
        "scope_line": "自基线日期 {baseline} 以来：新增 {added} 项（估算 {estimate_added}），移除 {removed} 项（估算 {estimate_removed}）。",
        "scope_none": "未设置范围基线（start_date 或 baseline_date）。",
        "changes_line": "自 {since} 以来：完成 {completed} 项，新增 {added} 项，重新打开 {reopened} 项，取消 {cancelled} 项，移除 {removed} 项。当时：已完成 {done_then} / {total_then} 项。",
        "changes_basis_publication": "上次发布的报告",
        "changes_basis_previous_period": "上一报告期",
        "change_completed": "完成",
        "change_added": "新增",
        "change_reopened": "重新打开",
        "change_cancelled": "取消",
        "change_removed": "移除",
        "scope_added": "新增",
        "scope_removed": "移除",
        "never": "从未",
        "gantt_more": "另有 {count} 个里程碑和史诗未绘出。",
        "chart_scope": "范围",
        "chart_done": "已完成",
        "chart_items": "事项数",
        "chart_target": "目标",
        "chart_forecast": "预测 P85",
        "chart_period": "本期",
        "chart_none": "暂无可绘制的数据。",
        "closing_planned": "计划",
        "closing_actual": "实际",
        "closing_start": "开始",
        "closing_end": "结束",
        "closing_slip": "偏差",
        "closing_outcome": "已完成 {done} 项，已取消 {cancelled} 项，未完成 {open} 项。",
        "closing_throughput": "吞吐量：每周 {rate} 项。",
        "closing_cycle": "周期时间（从开始到完成，共 {count} 项）：中位数 {p50}，85 分位 {p85}，平均 {mean}。",
        "closing_feedback": "共 {count} 次客户评分，平均 {average} 分（满分 5 分）。",
        "closing_no_feedback": "没有记录客户反馈。",
        "slip_days": "延迟 {days}",
        "slip_early": "提前 {days}",
        "slip_none": "按时",
        "footer": "本报告由 pmsync 根据上述来源同步的数据生成。",
        "reason_override": "由项目经理设定：{note}",
        "reason_override_no_note": "由项目经理设定。",
        "reason_rules_say": "仅按规则判断为：{status}。",
        "reason_complete": "全部 {done} 项均已完成。",
        "reason_empty": "目前没有纳入范围的事项。",
        "reason_target_passed": "目标日期 {target} 已过，仍有 {open} 项未完成。",
        "reason_p50_late": "即使是中位数预测（{p50}）也晚于目标日期 {target}。",
        "reason_p85_late": "85% 把握的预测（{p85}）晚于目标日期 {target}。",
        "reason_p85_ok": "85% 把握的预测（{p85}）不晚于目标日期 {target}。",
        "reason_no_forecast": "无法对照目标日期预测：{why}。",
        "reason_no_target": "未设置目标日期。",
        "reason_milestone_late": "里程碑 {name} 已超过截止日期 {due} {days}。",
        "reason_blockers": "{count} 项受阻未解决；受阻最久的已持续 {days}。",
        "reason_never_synced": "数据来源 {source} 从未同步。",
        "reason_stale": "数据来源 {source} 最近一次同步于 {when}，超出了计划允许的间隔（{allowed}）。",
        "reason_all_clear": "没有逾期的里程碑，没有受阻达 {days} 或以上的事项，数据是最新的。",
        "fc_too_little_history": "历史数据不足：最近 {days} 内仅完成 {completed} 项（至少需要 {min} 项）",
        "fc_short_window": "历史数据只有 {days}（至少需要 {min}）",
        "fc_nothing_left": "没有未完成的事项",
        "fc_beyond_horizon": "按近期速度，部分完成日期在十年以后",
        "health_on_track": "按计划推进",
        "health_at_risk": "存在风险",
        "health_off_track": "偏离计划",
        "health_complete": "已完成",
        "cat_todo": "待办",
        "cat_in_progress": "进行中",
        "cat_done": "已完成",
        "cat_cancelled": "已取消",
        "state_done": "已完成",
        "state_on_track": "正常",
        "state_at_risk": "有风险",
        "state_late": "已逾期",
        "kind_milestone": "里程碑",
        "kind_epic": "史诗",
    },
}


def t(lang: str, key: str, **values: object) -> str:
    """Return message `key` in `lang` with `values` filled in."""
    return MESSAGES[lang][key].format(**values)


def health_word(lang: str, status: str) -> str:
    return t(lang, f"health_{status}")


def category_word(lang: str, category: str) -> str:
    return t(lang, f"cat_{category}")


def fmt_date(lang: str, value: date | None) -> str:
    """26 Nov 2026 / 2026年11月26日 (an empty string for None)."""
    if value is None:
        return ""
    if lang == "zh-CN":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"


def fmt_datetime(lang: str, value: datetime | None, zone: ZoneInfo) -> str:
    """The local time in `zone` with the zone's name."""
    if value is None:
        return t(lang, "never")
    local = value.astimezone(zone)
    day = fmt_date(lang, local.date())
    if lang == "zh-CN":
        return f"{day} {local:%H:%M}（{zone.key}）"
    return f"{day} {local:%H:%M} ({zone.key})"


def fmt_days(lang: str, n: int) -> str:
    if lang == "zh-CN":
        return f"{n} 天"
    return f"{n} day" if n == 1 else f"{n} days"


def fmt_duration(lang: str, value: timedelta) -> str:
    """Whole days, or hours below a day."""
    if value >= timedelta(days=1):
        return fmt_days(lang, round(value / timedelta(days=1)))
    hours = round(value / timedelta(hours=1))
    if lang == "zh-CN":
        return f"{hours} 小时"
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def fmt_number(value: float | None) -> str:
    """12, 12.5, 12.25 (no trailing zeros); an en dash for None."""
    if value is None:
        return "–"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_percent(value: float | None) -> str:
    return "–" if value is None else f"{fmt_number(value)}%"


def fmt_signed(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "±0"
    return f"+{fmt_number(value)}" if value > 0 else fmt_number(value)
