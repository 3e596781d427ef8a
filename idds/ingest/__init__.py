"""Ingestion: delivery folders of CSV files into ``raw.*``, ``dq.quarantine`` and ledgers."""
