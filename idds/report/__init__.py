"""HTML reports: the steward's validation report (and, later, the study report)."""
