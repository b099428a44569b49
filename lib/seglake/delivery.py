"""How a source's delivered files are read: the one reader ingest and ``seglake check`` share.

CSV fields are bound by header name (a delivery may order its columns otherwise or add some), a
header short of a declared column rejects its file, and a record holding a NUL is set aside as
unparseable on its own, not with its file.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from seglake.config import SeglakeConfig, SourceConfig
from seglake.tables import CORRUPT, KEEPS_CORRUPT, declared_schema

NUL = "\u0000"  # valid in JSON strings and CSV fields, refused downstream: per record
# the longest JSON string value read (Jackson's default, 20 M characters, would make a valid
# record with a long text unparseable); a longer one is a corrupt record, not a failed file
JSON_MAX_STRING = str(1_000_000_000)


def reader_options(source: SourceConfig) -> dict[str, str]:
    """The source's reader options, keeping unparseable records in the corrupt column."""
    options = dict(source.options)
    if source.format in KEEPS_CORRUPT:
        options.setdefault("mode", "PERMISSIVE")
        options.setdefault("columnNameOfCorruptRecord", CORRUPT)
    if source.format == "json":
        options.setdefault("maxStringLen", JSON_MAX_STRING)
    return options


def has_header(source: SourceConfig) -> bool:
    """A CSV source read with a header line: its fields are bound by name."""
    return source.format == "csv" and source.options.get("header", "false").lower() == "true"


def landing_path(config: SeglakeConfig, name: str) -> str:
    return f"{config.landing.root.rstrip('/')}/{config.sources[name].path}"


def files_read(spark: SparkSession, source: SourceConfig, files: list[str]) -> DataFrame:
    """``files`` read as declared (by position), with ``_source_file``."""
    return spark.read.format(source.format).options(**reader_options(source)) \
        .schema(declared_schema(source)).load(files) \
        .withColumn("_source_file", F.col("_metadata.file_path"))


def csv_headers(spark: SparkSession, files: list[str], options: dict[str, str]
                ) -> dict[str, list[str]]:
    """The header fields of each CSV file, from its first line read through Hadoop (any file
    system the cluster reads, compressed or not)."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf)
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"')
    headers = {}
    for file in files:
        path = jvm.org.apache.hadoop.fs.Path(file)
        stream = path.getFileSystem(conf).open(path)
        codec = codecs.getCodec(path)
        try:
            if codec is not None:
                stream = codec.createInputStream(stream)
            reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(
                stream, options.get("encoding", options.get("charset", "UTF-8"))))
            line = reader.readLine() or ""
        except Exception:  # noqa: BLE001 - an unreadable file is judged by the reader
            line = ""
        finally:
            stream.close()
        headers[file] = [f.strip().strip(quote).strip() for f in
                         line.lstrip("\ufeff").split(sep)] if line else []
    return headers


def bound_by_name(spark: SparkSession, source: SourceConfig, headers: dict[str, list[str]]
                  ) -> DataFrame:
    """The files' records with each field bound by its header name, in the declared schema."""
    declared_fields = [f for f in declared_schema(source).fields if f.name != CORRUPT]
    options = reader_options(source)
    by_header: dict[tuple[str, ...], list[str]] = {}
    for file, header in headers.items():
        by_header.setdefault(tuple(header), []).append(file)
    out = None
    for header, files in sorted(by_header.items()):
        schema = T.StructType([T.StructField(h, T.StringType()) for h in header]) \
            .add(CORRUPT, T.StringType())
        read = spark.read.format("csv").options(**options).schema(schema).load(files)
        part = read.select(*[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name)
                             for f in declared_fields], CORRUPT,
                           F.col("_metadata.file_path").alias("_source_file"))
        out = part if out is None else out.unionByName(part)
    return out


def header_check(spark: SparkSession, source: SourceConfig, name: str, files: list[str]
                 ) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """CSV with a header: ({file: why rejected} for headers that lack a declared column,
    {file: header} for headers that order the columns otherwise, to bind by name,
    {file: fields} the header has and the source does not declare, which are not loaded)."""
    if not has_header(source):
        return {}, {}, {}
    names = [f.name for f in declared_schema(source).fields if f.name != CORRUPT]
    rejected, rebind, extra = {}, {}, {}
    for file, header in csv_headers(spark, sorted(files), source.options).items():
        missing = [c for c in names if c not in header]
        if header and missing:
            rejected[file] = (f"the header lacks {', '.join(missing)} (it has "
                              f"{', '.join(header)}): see sources.{name}.columns")
        elif header and header != names:
            rebind[file] = header
        if header and set(header) - set(names):
            extra[file] = [h for h in header if h not in names]
    return rejected, rebind, extra


def record_text(batch: DataFrame, fields: list[str]) -> Column | None:
    """The string fields among ``fields`` concatenated (null as empty); None without any."""
    strings = [F.coalesce(F.col(f.name), F.lit("")) for f in batch.schema.fields
               if isinstance(f.dataType, T.StringType) and f.name in fields]
    return F.concat(*strings) if strings else None


def nul_records_corrupt(batch: DataFrame) -> DataFrame:
    """Records holding a NUL character are set aside as unparseable (the record, as JSON, in
    the corrupt-record column), not their whole file: refine quarantines them."""
    if CORRUPT not in batch.columns:
        return batch
    fields = [f.name for f in batch.schema.fields if f.name not in (CORRUPT, "_source_file")]
    text = record_text(batch, fields)
    if text is None:
        return batch
    has_nul = text.contains(NUL)
    return batch.withColumn(CORRUPT, F.when(F.col(CORRUPT).isNull() & has_nul, F.to_json(
        F.struct(*fields))).otherwise(F.col(CORRUPT)))


def delivered(spark: SparkSession, source: SourceConfig, name: str, batch: DataFrame
              ) -> tuple[DataFrame, dict[str, str], dict[str, list[str]]]:
    """(records as ingest loads them, {file: why rejected}, {file: undeclared fields}):
    ``batch`` (files read by position) with reordered CSV headers bound by name and NUL
    records set aside."""
    files = [r[0] for r in batch.select("_source_file").distinct().collect()] \
        if has_header(source) else []
    rejected, rebind, extra = header_check(spark, source, name, files)
    if rebind:
        batch = batch.where(~F.col("_source_file").isin(list(rebind))).unionByName(
            bound_by_name(spark, source, rebind))
    return nul_records_corrupt(batch), rejected, extra


def sampled(spark: SparkSession, config: SeglakeConfig, name: str, rows: int
            ) -> tuple[DataFrame, dict[str, str], dict[str, list[str]]]:
    """``delivered`` on up to ``rows`` records of the source's landing files (``_batch_id``
    0), a header-rejected file's records left out."""
    source = config.sources[name]
    sample = files_read(spark, source, [landing_path(config, name)]).limit(rows)
    batch, rejected, extra = delivered(spark, source, name, sample)
    if rejected:
        batch = batch.where(~F.col("_source_file").isin(list(rejected)))
    return batch.limit(rows).withColumn("_batch_id", F.lit(0).cast("long")), rejected, extra


def undeclared_folders(spark: SparkSession, config: SeglakeConfig) -> list[str]:
    """Folders under ``landing.root`` that no source reads: their files would never be
    ingested (hidden and ``_`` folders are left out)."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(config.landing.root)
    fs = root.getFileSystem(conf)
    if not fs.exists(root):
        return []
    read = {s.path.strip("/").split("/")[0] for s in config.sources.values() if s.path}
    # seglake's own folders (a lakehouse or reports root kept under the landing root)
    own = [str(r).rstrip("/") for r in (config.lakehouse.root, config.reports.root,
                                        config.truth.root) if r]
    found = []
    for status in fs.listStatus(root):
        name, path = status.getPath().getName(), status.getPath().toUri().getPath()
        if (status.isDirectory() and name[0] not in "._" and name not in read
                and not any(o == path or o.startswith(path + "/") for o in own)):
            found.append(name)
    return sorted(found)
