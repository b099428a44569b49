"""File operations through Hadoop's FileSystem, so the generator writes to whatever storage
the cluster mounts (local disk, HDFS, object stores) exactly as it does on a laptop. On the
local file system listing and moving go through ``os`` instead: a py4j round trip per call made
the moves of the demo's daily files cost ~30 ms each."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession


class Storage:
    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        # paths without a scheme are on the default file system (looked up once, not per call)
        default = self._jvm.org.apache.hadoop.fs.FileSystem.getDefaultUri(self._conf)
        self._default_is_local = default.getScheme() in (None, "file")

    def _path(self, path: str):  # noqa: ANN202 - a py4j Hadoop Path
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str):  # noqa: ANN202
        return self._path(path).getFileSystem(self._conf)

    def local(self, path: str) -> str | None:
        """The operating-system path when ``path`` is on the local file system, else None."""
        parsed = urlparse(path)
        if parsed.scheme == "file":
            return unquote(parsed.path)
        if parsed.scheme == "" and self._default_is_local:
            return os.path.abspath(path)
        return None

    def exists(self, path: str) -> bool:
        local = self.local(path)
        if local is not None:
            return os.path.exists(local)
        return bool(self._fs(path).exists(self._path(path)))

    def list(self, path: str, prefix: str = "") -> list[str]:
        """Children of a directory (full paths), sorted; empty when it does not exist."""
        local = self.local(path)
        if local is not None:
            if not os.path.isdir(local):
                return []
            return sorted(f"{path.rstrip('/')}/{name}" for name in os.listdir(local)
                          if name.startswith(prefix))
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
        local_source, local_target = self.local(source), self.local(target)
        if local_source is not None and local_target is not None:
            os.makedirs(os.path.dirname(local_target), exist_ok=True)
            os.replace(local_source, local_target)
            return
        fs = self._fs(target)
        fs.mkdirs(self._path(target).getParent())
        if fs.exists(self._path(target)):
            fs.delete(self._path(target), False)
        if not fs.rename(self._path(source), self._path(target)):
            raise OSError(f"could not move {source} to {target}")
        # the local filesystem moves Hadoop's checksum side file along; sources do not send one
        parent, name = target.rsplit("/", 1)
        self.delete(f"{parent}/.{name}.crc")

    def write_daily_files(self, lines: DataFrame, work: str, root: str,
                          file_name: Callable[[str, int], str]) -> int:
        """Write (folder, batch_day, line, text) rows as one text file per folder and day,
        lines in order, in one Spark job; then move each into
        ``root/folder/file_name(folder, day)``. Returns the number of files."""
        (lines.repartition("folder", "batch_day")
         .sortWithinPartitions("folder", "batch_day", "line")
         .select("folder", "batch_day", "text")
         .write.mode("overwrite").partitionBy("folder", "batch_day").text(work))
        count = 0
        for folder_dir in self.list(work, prefix="folder="):
            folder = unquote(folder_dir.rsplit("=", 1)[1])
            for day_dir in self.list(folder_dir, prefix="batch_day="):
                day = int(day_dir.rsplit("=", 1)[1])
                parts = [p for p in self.list(day_dir)
                         if p.rsplit("/", 1)[1].startswith("part-")]
                if len(parts) != 1:
                    raise RuntimeError(f"expected one file for {folder} day {day} in "
                                       f"{day_dir}, got {parts}")
                self.move(parts[0], f"{root.rstrip('/')}/{folder}/{file_name(folder, day)}")
                count += 1
        self.delete(work)
        return count
