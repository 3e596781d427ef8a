"""IDDS cancer-pain registry: ingestion, data quality, cohort build, analysis, reports."""

__version__ = "0.1.0"
