"""The user's LLM usage: the price table, reading usage files, and a generated sample set."""

from runwire.usage.importer import (
    CSV_REQUIRED_COLUMNS,
    ImportFormat,
    ImportReport,
    detect_format,
    parse_csv,
    parse_jsonl,
)
from runwire.usage.pricing import ModelPrice, PricingTable, normalize_model_name
from runwire.usage.sample import generate_sample
from runwire.usage.validation import parse_record

__all__ = [
    "CSV_REQUIRED_COLUMNS",
    "ImportFormat",
    "ImportReport",
    "ModelPrice",
    "PricingTable",
    "detect_format",
    "generate_sample",
    "normalize_model_name",
    "parse_csv",
    "parse_jsonl",
    "parse_record",
]
