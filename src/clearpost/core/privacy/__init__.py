"""Partner reports: contribution bounds, OpenDP noise, suppression, the budget ledger's
rules, and report signatures. Pure: no I/O; noise comes from OpenDP's own sampler."""

from clearpost.core.privacy.bounds import (
    METRICS,
    Activity,
    Bounds,
    ClickEvent,
    Contributions,
    IntentEvent,
    ShareEvent,
    UserContribution,
    contributions,
)
from clearpost.core.privacy.errors import (
    BudgetSpent,
    InvalidPeriod,
    PeriodNotNext,
    PeriodOpen,
    YearBudgetSpent,
)
from clearpost.core.privacy.ledger import (
    Period,
    check_year_budget,
    choose_period,
    next_period,
    next_period_in_budget,
    parse_period,
    spent_by_year,
    year_of,
)
from clearpost.core.privacy.mechanism import (
    MeasurementSpec,
    NoisyCounts,
    ReleasePlan,
    plan_release,
    release,
)
from clearpost.core.privacy.report import (
    build_report,
    publish,
    report_bytes,
    report_entry,
    report_hash,
)
from clearpost.core.privacy.signing import ReportSigner, verify_report

__all__ = [
    "METRICS",
    "Activity",
    "Bounds",
    "BudgetSpent",
    "ClickEvent",
    "Contributions",
    "IntentEvent",
    "InvalidPeriod",
    "MeasurementSpec",
    "NoisyCounts",
    "Period",
    "PeriodNotNext",
    "PeriodOpen",
    "ReleasePlan",
    "ReportSigner",
    "ShareEvent",
    "UserContribution",
    "YearBudgetSpent",
    "build_report",
    "check_year_budget",
    "choose_period",
    "contributions",
    "next_period",
    "next_period_in_budget",
    "parse_period",
    "plan_release",
    "publish",
    "release",
    "report_bytes",
    "report_entry",
    "report_hash",
    "spent_by_year",
    "verify_report",
    "year_of",
]
