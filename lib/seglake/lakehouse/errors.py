"""Errors of the lakehouse layer; messages name the table and what to do."""


class LakehouseError(RuntimeError):
    """A lakehouse operation could not be done; the table is unchanged."""


class TableNotFoundError(LakehouseError):
    """The named table has no Delta log yet."""


class SchemaMismatchError(LakehouseError):
    """Incoming data does not fit the table's schema or partitioning."""


class MergeKeyError(LakehouseError):
    """A merge source has several rows for one key, so the result would be ambiguous."""
