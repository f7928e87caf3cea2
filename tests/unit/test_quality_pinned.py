"""The quality gate's verdicts, evidence and figures pinned exactly as they were before the gate's
scans were made cheaper (docs/decisions.md, "Session 14: quality gate"): the same texts against
the same results give the same figures (values, units, precisions, types), the same numbers and
dates as evidence, and the same public verdicts, failing ones included."""

from __future__ import annotations

from typing import Any

import pytest

from runwire.agents.evidence import Numbers
from runwire.agents.figures import figures
from runwire.agents.model_loop import INSTRUCTIONS
from runwire.agents.quality import assess
from tests.unit.test_quality import RESULTS, SPEND

pytestmark = pytest.mark.unit

# List markers, a date right after a marker's ")", dates no date reads ("x2025-04-01"), names,
# "<" bounds, scaled units, separators that are no thousands ("1,52").
TRICKY = (
    "1)2025-04-01 and 1. 2025-04-02\n  2) 3 models, <$0.0001, < 5 ms, $4.2k, 2M, 1.5 s, "
    "gpt-4o, 12.30%, 4,071.5, v1.2.3, 2025-13-45, x2025-04-01, 2025-04-011, 10.\n"
    "12. $1,234,567.891 at p95; 0.5s, 7K, 99 %, (42), 1,52 and 3."
)

EVIDENCE: list[tuple[str, Any]] = [
    *RESULTS,
    (
        "notes",
        [
            "$4.56 a month today, $0.99 on mistral-medium (78.3% less)",
            "2025-05-01T10:00:00Z",
            "run_2025",
            "1. 2025-04-03 then 12. 7 ms",
        ],
    ),
    (
        "rows",
        [
            {"a": 1, "b": 2.5, "c": True, "d": float("nan")},
            {"a": 3, "b": -1.25, "c": "x"},
            ("t", 4),
        ],
    ),
]

COMPARE = {
    "kind": "compare",
    "subjects": [{"kind": "model", "name": "gpt-4o"}, {"kind": "model", "name": "o3"}],
}


def test_figures_are_pinned() -> None:
    found = [(f.text, f.value, f.unit, f.tolerance) for f in figures(TRICKY)]
    # repr: a date's value is an int, the others floats; the pin holds the types too.
    assert repr(found) == repr(
        [
            ("2025-04-01", 20250401, "date", 0.0),
            ("2025-04-02", 20250402, "date", 0.0),
            ("2025-13-45", 20251345, "date", 0.0),
            ("1", 1.0, "", 0.5),
            ("1", 1.0, "", 0.5),
            ("3", 3.0, "", 0.5),
            ("<$0.0001", 5e-05, "$", 5e-05),
            ("< 5 ms", 2.5, "ms", 2.5),
            ("$4.2k", 4200.0, "$", 50.0),
            ("2M", 2000000.0, "", 500000.0),
            ("1.5 s", 1500.0, "ms", 50.0),
            ("12.30%", 12.3, "%", 0.005),
            ("4,071.5", 4071.5, "", 0.05),
            ("2025", 2025.0, "", 0.5),
            ("10", 10.0, "", 0.5),
            ("$1,234,567.891", 1234567.891, "$", 0.0005),
            ("0.5s", 500.0, "ms", 50.0),
            ("7K", 7000.0, "", 500.0),
            ("99 %", 99.0, "%", 0.5),
            ("42", 42.0, "", 0.5),
            ("1", 1.0, "", 0.5),
            ("52", 52.0, "", 0.5),
            ("3", 3.0, "", 0.5),
        ]
    )


def test_evidence_is_pinned() -> None:
    numbers = Numbers([result for _, result in EVIDENCE])
    assert repr(numbers.sorted) == repr(
        [
            4e-05, 0.024, 0.99, 1.0, 1.25, 2.5, 3.0, 4.0, 4.56, 5.0, 7.0, 8.2573, 10.1, 12.0,
            16.6, 21.6081, 29.8654, 30.5, 40.6, 43.6, 49.6134, 50.8861, 60.2, 78.3, 777.77,
            2025.0, 4071.0, 12802.8,
        ]
    )  # fmt: skip
    assert repr(sorted(numbers.dates)) == repr([20250401, 20250403, 20250501])


@pytest.mark.parametrize(
    ("text", "reading", "instructions", "public"),
    [
        (
            "## Spend\n\n1. **claude-3-5-sonnet** costs $21.61 of $49.61 (43.6%) since "
            "2025-04-01.\n2. Save $40.60 a month: 79.8% of $50.89; $29.87 for two.\n",
            SPEND,
            (),
            {
                "score": 1.0,
                "passed": True,
                "reasons": [],
                "figures": 8,
                "supported": 8,
                "unsupported": [],
            },
        ),
        (
            "Since 2025-04-03 you made 4,071 calls; $4.56 becomes $0.99 (78.3% less), 3.2 days, "
            "$1.23, $4.56, $7.89, $10.11, $12.13, $14.15 and 2025-05-02.",
            SPEND,
            (),
            {
                "score": 0.821,
                "passed": False,
                "reasons": [
                    {
                        "reason": "unsupported_figure",
                        "message": "7 figures no tool computed: 2025-05-02, 3.2, $1.23, $7.89, "
                        "$10.11 …",
                    }
                ],
                "figures": 13,
                "supported": 6,
                "unsupported": [
                    "2025-05-02",
                    "3.2",
                    "$1.23",
                    "$7.89",
                    "$10.11",
                    "$12.13",
                    "$14.15",
                ],
            },
        ),
        (
            "Everything looks fine.",
            COMPARE,
            (),
            {
                "score": 0.333,
                "passed": False,
                "reasons": [
                    {
                        "reason": "subject_missing",
                        "message": "the answer does not address model gpt-4o",
                    },
                    {
                        "reason": "low_value",
                        "message": "the answer has no figure and no action to take",
                    },
                ],
                "figures": 0,
                "supported": 0,
                "unsupported": [],
            },
        ),
        (
            "Which model do you mean: gpt-4o or claude-3-5-sonnet? 12.5% of calls",
            {"kind": "unclear", "subjects": []},
            (),
            {
                "score": 0.667,
                "passed": False,
                "reasons": [
                    {"reason": "unsupported_figure", "message": "1 figure no tool computed: 12.5%"}
                ],
                "figures": 1,
                "supported": 0,
                "unsupported": ["12.5%"],
            },
        ),
        (
            "You are runwire's analyst. Call the tools to measure the user's usage data, then "
            "answer. p95 is 12,803 ms",
            {"kind": "latency", "subjects": [], "percentile": 95},
            INSTRUCTIONS,
            {
                "score": 0.667,
                "passed": False,
                "reasons": [
                    {
                        "reason": "echoes_instructions",
                        "message": "the answer restates runwire's instructions to the model "
                        "instead of answering: 15 of its 22 words quote them",
                    }
                ],
                "figures": 1,
                "supported": 1,
                "unsupported": [],
            },
        ),
    ],
)
def test_verdicts_are_pinned(
    text: str, reading: dict[str, Any], instructions: tuple[str, ...], public: dict[str, Any]
) -> None:
    verdict = assess(
        text,
        EVIDENCE,
        question="Where can we cut our costs in 30 days?",
        reading=reading,
        references=("2025-04-01", "Prices at the <=128k-token rate"),
        instructions=instructions,
    )
    assert verdict.public() == public
    assert repr(verdict.score) == repr(public["score"])
