"""The XML header of a ``.vti`` file, parsed and checked here before VTK sees the file.

VTK trusts what a header declares: a huge ``WholeExtent`` or a negative
``NumberOfComponents`` aborts the process (``std::bad_alloc``), and an extent
larger than the data returns uninitialised memory. This module reads the
XML with a streaming parser (the appended binary section is never parsed as
XML, and DOCTYPE/ENTITY declarations are refused), then checks for every
array its type and components, the bytes its binary header declares against
the bytes the extent needs, and that those bytes lie inside the file.

Supported: VTK XML ImageData, one piece, data inline (``binary`` base64,
``ascii``) or appended (``raw`` or ``base64``), compressed or not, header
type UInt32 or UInt64, either byte order.
"""

from __future__ import annotations

import base64
import binascii
import math
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaereg_core.errors import CorruptVoxelFileError, UnsupportedVoxelFileError
from vaereg_core.voxel_safety.budget import check_declared_array, check_metadata_size, max_voxel_bytes

VTK_TYPES = {
    "Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4",
    "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8", "Char": "i1", "UnsignedChar": "u1",
    "Short": "i2", "UnsignedShort": "u2", "Int": "i4", "UnsignedInt": "u4", "Long": "i8", "UnsignedLong": "u8",
    "Float": "f4", "Double": "f8", "String": "S",
}  # fmt: skip
COMPRESSORS = ("vtkZLibDataCompressor", "vtkLZ4DataCompressor", "vtkLZMADataCompressor")
MAX_COMPONENTS = 64
TEXT_KEPT = 1 << 20
"""Leading characters of inline data kept for decoding its binary header (enough for 2e5 blocks)."""


@dataclass
class VtiArray:
    """One DataArray (or FieldData Array) as its XML declares it."""

    section: str
    name: str
    type: str
    components: int
    tuples: int
    format: str
    offset: int | None
    text: list[str] = field(default_factory=list)
    text_length: int = 0
    ascii_tokens: int = 0


@dataclass
class VtiHeader:
    """What a ``.vti`` file declares, once checked."""

    extent: tuple[int, int, int, int, int, int]
    little_endian: bool
    header_dtype: np.dtype
    compressed: bool
    arrays: list[VtiArray]
    appended_encoding: str | None = None
    appended_start: int | None = None

    @property
    def cells(self) -> tuple[int, int, int]:
        """Number of cells (voxels) along x, y, z."""
        e = self.extent
        return (e[1] - e[0], e[3] - e[2], e[5] - e[4])


class _Stop(Exception):
    """Raised by the parser's handler at the start of the appended (non-XML) section."""


def read_vti_header(path: Path) -> VtiHeader:
    """Parse and check a ``.vti`` file's header (see the module docstring).

    Raises
    ------
    CorruptVoxelFileError
        Malformed XML or attributes, data shorter than declared, inconsistent sizes.
    UnsupportedVoxelFileError
        Another dataset type, several pieces, an unknown compressor or type.
    VoxelFileTooLargeError
        The arrays need more than the memory budget.
    """
    parser = _HeaderParser(path)
    parser.parse()
    header = parser.header()
    size = path.stat().st_size
    with open(path, "rb") as f:
        for array in header.arrays:
            _check_array_data(path, header, array, f, size)
    return header


class _HeaderParser:
    """Streams the XML through expat, collecting the elements and the leading text of each data array."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root: dict[str, str] | None = None
        self.image: dict[str, str] | None = None
        self.pieces: list[dict[str, str]] = []
        self.arrays: list[VtiArray] = []
        self.section: str | None = None
        self.current: VtiArray | None = None
        self.space_before = True
        self.appended: dict[str, str] | None = None
        self.appended_at = 0
        self.p = xml.parsers.expat.ParserCreate()
        self.p.StartElementHandler = self._start
        self.p.EndElementHandler = self._end
        self.p.CharacterDataHandler = self._text
        self.p.StartDoctypeDeclHandler = self._refuse_dtd
        self.p.EntityDeclHandler = self._refuse_dtd

    def parse(self) -> None:
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 16):
                    self.p.Parse(chunk, False)
                self.p.Parse(b"", True)
        except _Stop:
            return
        except xml.parsers.expat.ExpatError as exc:
            raise CorruptVoxelFileError(self.path, f"cannot read .vti file, it is truncated or corrupt (XML: {exc})") from None

    def _refuse_dtd(self, *args: object) -> None:
        raise CorruptVoxelFileError(self.path, "a VTK file has no DOCTYPE or ENTITY declarations (refused)")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "VTKFile":
            self.root = attrs
        elif name == "ImageData":
            self.image = attrs
        elif name == "Piece":
            self.pieces.append(attrs)
        elif name in ("PointData", "CellData", "FieldData"):
            self.section = name
        elif name in ("DataArray", "Array") and self.section is not None:
            self.current = self._array(attrs)
            self.arrays.append(self.current)
            self.space_before = True
        elif name == "AppendedData":
            self.appended = attrs
            self.appended_at = self.p.CurrentByteIndex
            raise _Stop

    def _end(self, name: str) -> None:
        if name in ("PointData", "CellData", "FieldData"):
            self.section = None
        elif name in ("DataArray", "Array"):
            self.current = None

    def _text(self, data: str) -> None:
        array = self.current
        if array is None:
            return
        stripped = "".join(data.split())
        if array.text_length < TEXT_KEPT:
            array.text.append(stripped[: TEXT_KEPT - array.text_length])
        array.text_length += len(stripped)
        # Tokens of ascii data, counted across the parser's chunk boundaries.
        words = data.split()
        array.ascii_tokens += len(words) - (1 if words and not self.space_before and not data[0].isspace() else 0)
        self.space_before = data[-1:].isspace() if data else self.space_before

    def _array(self, attrs: dict[str, str]) -> VtiArray:
        kind = attrs.get("type", "")
        if kind not in VTK_TYPES:
            raise UnsupportedVoxelFileError(self.path, f"data array type {kind[:40]!r}")
        components = _integer(self.path, attrs.get("NumberOfComponents", "1"), "NumberOfComponents")
        if not 1 <= components <= MAX_COMPONENTS:
            raise CorruptVoxelFileError(self.path, f"NumberOfComponents={components} (must be 1..{MAX_COMPONENTS})")
        form = attrs.get("format", "")
        if form not in ("binary", "ascii", "appended"):
            raise CorruptVoxelFileError(self.path, f"data array format {form[:40]!r} (must be binary, ascii or appended)")
        offset = _integer(self.path, attrs.get("offset", ""), "offset") if form == "appended" else None
        if offset is not None and offset < 0:
            raise CorruptVoxelFileError(self.path, f"negative appended-data offset {offset}")
        tuples = _integer(self.path, attrs["NumberOfTuples"], "NumberOfTuples") if "NumberOfTuples" in attrs else -1
        return VtiArray(self.section or "", attrs.get("Name", ""), kind, components, tuples, form, offset)

    def header(self) -> VtiHeader:
        path = self.path
        if self.root is None or self.image is None:
            raise CorruptVoxelFileError(path, "cannot read .vti file, it is truncated or corrupt (no VTKFile/ImageData element)")
        if self.root.get("type") != "ImageData":
            raise UnsupportedVoxelFileError(path, f"VTK dataset type {self.root.get('type', '')[:40]!r} (expected ImageData)")
        if len(self.pieces) != 1:
            raise UnsupportedVoxelFileError(path, f"{len(self.pieces)} pieces (expected one)")
        extent = _extent(path, self.image.get("WholeExtent", ""))
        if _extent(path, self.pieces[0].get("Extent", "")) != extent:
            raise CorruptVoxelFileError(path, "the piece's Extent differs from the WholeExtent")
        header_type = self.root.get("header_type", "UInt32")
        if header_type not in ("UInt32", "UInt64"):
            raise CorruptVoxelFileError(path, f"header_type {header_type[:40]!r} (must be UInt32 or UInt64)")
        compressor = self.root.get("compressor")
        if compressor is not None and compressor not in COMPRESSORS:
            raise UnsupportedVoxelFileError(path, f"compressor {compressor[:40]!r}")
        little = self.root.get("byte_order", "LittleEndian") != "BigEndian"
        header = VtiHeader(extent, little, np.dtype(("<" if little else ">") + ("u4" if header_type == "UInt32" else "u8")), compressor is not None, self.arrays)
        if self.appended is not None:
            header.appended_encoding = self.appended.get("encoding", "")
            if header.appended_encoding not in ("raw", "base64"):
                raise CorruptVoxelFileError(path, f"appended-data encoding {header.appended_encoding[:40]!r}")
            header.appended_start = _appended_start(path, self.appended_at)
        elif any(a.format == "appended" for a in self.arrays):
            raise CorruptVoxelFileError(path, "arrays refer to appended data, but the file has none (truncated)")
        _check_budget(path, header)
        return header


def _integer(path: Path, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CorruptVoxelFileError(path, f"{what}={text[:40]!r} is not an integer") from None


def _extent(path: Path, text: str) -> tuple[int, int, int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split())
    except ValueError:
        values = ()
    if len(values) != 6:
        raise CorruptVoxelFileError(path, f"extent {text[:60]!r} is not six integers")
    if any(values[2 * k + 1] <= values[2 * k] for k in range(3)):
        raise CorruptVoxelFileError(path, f"extent {text[:60]!r} has no cells along an axis (each maximum must exceed its minimum)")
    return values  # type: ignore[return-value]


def _appended_start(path: Path, tag_at: int) -> int:
    """Byte position just after the ``_`` that opens the appended data."""
    with open(path, "rb") as f:
        f.seek(tag_at)
        head = f.read(4096)
    end = head.find(b">")
    underscore = head.find(b"_", end + 1) if end >= 0 else -1
    if underscore < 0 or head[end + 1 : underscore].strip():
        raise CorruptVoxelFileError(path, "appended data do not start with '_' (truncated or corrupt)")
    return tag_at + underscore + 1


def _tuples(header: VtiHeader, array: VtiArray) -> int:
    cells = header.cells
    if array.section == "CellData":
        return math.prod(cells)
    if array.section == "PointData":
        return math.prod(c + 1 for c in cells)
    return max(array.tuples, 0)


def _check_budget(path: Path, header: VtiHeader) -> None:
    """Every point and cell array fits the budget, and all of them together do."""
    total = 0
    for array in header.arrays:
        if array.type == "String":
            continue
        dtype = np.dtype(VTK_TYPES[array.type])
        shape = header.cells if array.section == "CellData" else (_tuples(header, array),)
        if array.components > 1:
            shape = (*shape, array.components)
        total += check_declared_array(path, shape, dtype, what=f"array {array.name[:40]!r} declares")
    if total > max_voxel_bytes():
        check_declared_array(path, (total,), np.dtype("u1"), what="the arrays together declare")


def _check_array_data(path: Path, header: VtiHeader, array: VtiArray, f, size: int) -> None:
    """The array's binary header agrees with its declared size, and its bytes are in the file."""
    where = f"array {array.name[:40]!r}"
    if array.type == "String":
        expected = None
    else:
        expected = _tuples(header, array) * array.components * np.dtype(VTK_TYPES[array.type]).itemsize
    if array.format == "ascii":
        if expected is not None and array.ascii_tokens != expected // np.dtype(VTK_TYPES[array.type]).itemsize:
            raise CorruptVoxelFileError(path, f"{where}: {array.ascii_tokens} ascii values, the extent needs {expected // np.dtype(VTK_TYPES[array.type]).itemsize}")
        return
    if array.format == "binary":
        reader = _Base64Text("".join(array.text), array.text_length)
    elif header.appended_encoding == "raw":
        reader = _RawBytes(f, header.appended_start + array.offset, size)
    else:
        reader = _Base64File(f, header.appended_start + array.offset, size)
    try:
        declared = _declared_bytes(header, reader)
    except (ValueError, binascii.Error) as exc:
        raise CorruptVoxelFileError(path, f"{where}: its binary header is truncated or corrupt ({exc})") from None
    if expected is None:
        check_metadata_size(path, declared)
    elif declared != expected:
        raise CorruptVoxelFileError(path, f"{where}: holds {declared} bytes, the extent and components need {expected}")


def _declared_bytes(header: VtiHeader, reader: "_Reader") -> int:
    """Uncompressed bytes the binary header declares; checks that the (compressed) bytes follow."""
    word = header.header_dtype.itemsize
    if not header.compressed:
        (n,) = reader.words(header.header_dtype, 1)
        reader.require(word + n)
        return int(n)
    blocks, block_size, last = (int(v) for v in reader.words(header.header_dtype, 3))
    if blocks and (block_size == 0 or last > block_size):
        raise ValueError(f"blocks of {block_size} bytes, the last of {last}")
    if (3 + blocks) * word > reader.available():
        raise ValueError(f"{blocks} compressed blocks: a header longer than the data")
    sizes = reader.words(header.header_dtype, 3 + blocks)[3:]
    reader.require_after_header((3 + blocks) * word, int(np.sum(sizes, dtype=np.uint64)))
    if blocks == 0:
        return 0
    return (blocks - 1) * block_size + (last if last else block_size)


class _Reader:
    """Access to one array's encoded bytes: header words, and a check that enough bytes follow."""

    def words(self, dtype: np.dtype, count: int) -> np.ndarray:
        raise NotImplementedError

    def require(self, n: int) -> None:
        raise NotImplementedError

    def require_after_header(self, header_bytes: int, data_bytes: int) -> None:
        raise NotImplementedError

    def available(self) -> int:
        """Encoded bytes (or characters) from the array's start to its end or the file's."""
        raise NotImplementedError


class _RawBytes(_Reader):
    def __init__(self, f, start: int, size: int) -> None:
        self.f, self.start, self.size = f, start, size

    def words(self, dtype: np.dtype, count: int) -> np.ndarray:
        self.f.seek(self.start)
        data = self.f.read(count * dtype.itemsize)
        if len(data) < count * dtype.itemsize:
            raise ValueError("the file ends inside it")
        return np.frombuffer(data, dtype)

    def require(self, n: int) -> None:
        if self.start + n > self.size:
            raise ValueError(f"needs {n} bytes at byte {self.start}, the file has {self.size}")

    def require_after_header(self, header_bytes: int, data_bytes: int) -> None:
        self.require(header_bytes + data_bytes)

    def available(self) -> int:
        return self.size - self.start


def _encoded_length(n: int) -> int:
    return 4 * ((n + 2) // 3)


class _Base64Text(_Reader):
    """Inline base64 (whitespace removed); only its first :data:`TEXT_KEPT` characters are kept."""

    def __init__(self, text: str, length: int) -> None:
        self.text, self.length = text, length

    def words(self, dtype: np.dtype, count: int) -> np.ndarray:
        n = count * dtype.itemsize
        # A compressed array's header is encoded on its own; an uncompressed one shares its encoding with the data.
        chunk = self.text[: _encoded_length(n)]
        if len(chunk) < _encoded_length(n):
            raise ValueError("the data end inside it")
        data = base64.b64decode(chunk)
        return np.frombuffer(data[:n], dtype)

    def require(self, n: int) -> None:
        if self.length < _encoded_length(n):
            raise ValueError(f"needs {_encoded_length(n)} base64 characters, the array has {self.length}")

    def require_after_header(self, header_bytes: int, data_bytes: int) -> None:
        needed = _encoded_length(header_bytes) + _encoded_length(data_bytes)
        if self.length < needed:
            raise ValueError(f"needs {needed} base64 characters, the array has {self.length}")

    def available(self) -> int:
        return self.length * 3 // 4


class _Base64File(_Base64Text):
    """Appended base64: the encoded bytes from an offset to the end of the file."""

    def __init__(self, f, start: int, size: int) -> None:
        f.seek(start)
        super().__init__(f.read(TEXT_KEPT).decode("ascii", errors="replace"), size - start)
