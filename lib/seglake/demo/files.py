"""File operations through Hadoop's FileSystem, so the generator writes to whatever storage
the cluster mounts (local disk, HDFS, object stores) exactly as it does on a laptop."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


class Storage:
    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str):  # noqa: ANN202 - a py4j Hadoop Path
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str):  # noqa: ANN202
        return self._path(path).getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def list(self, path: str, prefix: str = "") -> list[str]:
        """Children of a directory (full paths), sorted; empty when it does not exist."""
        if not self.exists(path):
            return []
        statuses = self._fs(path).listStatus(self._path(path))
        return sorted(s.getPath().toString() for s in statuses
                      if s.getPath().getName().startswith(prefix))

    def delete(self, path: str) -> None:
        if self.exists(path):
            self._fs(path).delete(self._path(path), True)

    def read_text(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        stream = self._fs(path).open(self._path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines) + "\n"
        finally:
            stream.close()

    def write_text(self, path: str, text: str) -> None:
        """Write via a temporary file and a rename, so readers never see half a file."""
        tmp = f"{path}.tmp"
        fs = self._fs(tmp)
        fs.setWriteChecksum(False)
        stream = fs.create(self._path(tmp), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        self.move(tmp, path)

    def move(self, source: str, target: str) -> None:
        fs = self._fs(target)
        fs.mkdirs(self._path(target).getParent())
        if fs.exists(self._path(target)):
            fs.delete(self._path(target), False)
        if not fs.rename(self._path(source), self._path(target)):
            raise OSError(f"could not move {source} to {target}")
        # the local filesystem moves Hadoop's checksum side file along; sources do not send one
        parent, name = target.rsplit("/", 1)
        self.delete(f"{parent}/.{name}.crc")

    def write_daily_files(self, lines: DataFrame, work: str, root: str, folder: str,
                          file_name: Callable[[int], str]) -> int:
        """Write (batch_day, line, text) rows as one text file per day, lines in order, then
        move each into ``root/folder/file_name(day)``. Returns the number of files."""
        (lines.repartition("batch_day").sortWithinPartitions("batch_day", "line")
         .select(F.col("batch_day"), "text")
         .write.mode("overwrite").partitionBy("batch_day").text(work))
        count = 0
        for day_dir in self.list(work, prefix="batch_day="):
            day = int(day_dir.rsplit("=", 1)[1])
            parts = [p for p in self.list(day_dir) if p.rsplit("/", 1)[1].startswith("part-")]
            if len(parts) != 1:
                raise RuntimeError(f"expected one file for day {day} in {day_dir}, got {parts}")
            self.move(parts[0], f"{root.rstrip('/')}/{folder}/{file_name(day)}")
            count += 1
        self.delete(work)
        return count
