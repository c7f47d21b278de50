"""OVMF's variable store (the VARS flash, OVMF_VARS*.fd): the NV-data firmware volume holding
an authenticated variable store (EDK2 MdeModulePkg/Universal/Variable/RuntimeDxe/Variable.c
reads it; OvmfPkg/VarStore.fdf.inc lays it out). Variables are walked from the store's
start: each AUTHENTICATED_VARIABLE_HEADER with StartId 0x55AA, its UCS-2 name, its data,
padded to 4 bytes; the walk ends at the first header without StartId (erased flash is
0xFF). A variable counts when its State is VAR_ADDED (0x3F), or VAR_ADDED with
IN_DELETED_TRANSITION cleared (0x3E) when no VAR_ADDED copy follows (Variable.c
FindVariableEx)."""

import uuid
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.formats import efivars as fmt
from bootforge.formats import parse


@dataclass
class Variable:
    name: str
    guid: uuid.UUID
    attributes: int
    data: bytes
    offset: int              # file offset of its header
    state: int
    header: object = None    # the parsed AuthenticatedVariableHeader


@dataclass
class VarStore:
    data: bytes
    store_start: int         # first variable header
    store_end: int
    variables: list          # [Variable] that count, in store order

    def get(self, name, guid):
        return next((v for v in self.variables if v.name == name and v.guid == guid), None)

    @property
    def used_end(self):
        """File offset after the last header of the walk (where the next variable would go)."""
        return self._used_end

    _used_end: int = 0


def find_store(data, path=None):
    """(start, end) of the authenticated variable store inside *data*."""
    at = 0
    while at + 0x38 <= len(data):
        if data[at + 0x28:at + 0x2C] == fmt.FVH_SIGNATURE and \
                uuid.UUID(bytes_le=bytes(data[at + 0x10:at + 0x20])) == fmt.NV_DATA_FV_GUID:
            fv = parse(fmt.FirmwareVolumeHeader, data, at, "firmware volume header", path)
            store = at + fv.header_length
            if store + fmt.VARIABLE_STORE_HEADER_SIZE > len(data):
                break
            vs = parse(fmt.VariableStoreHeader, data, store, "variable store header", path)
            if uuid.UUID(bytes_le=vs.signature) != fmt.AUTHENTICATED_VARIABLE_GUID:
                raise FormatError("the variable store is not an authenticated one (OVMF's Secure Boot builds "
                                  "use gEfiAuthenticatedVariableGuid)", path=path, offset=store)
            if vs.format != fmt.VARIABLE_STORE_FORMATTED or vs.state != fmt.VARIABLE_STORE_HEALTHY:
                raise FormatError(f"variable store format {vs.format:#x} state {vs.state:#x} (want 0x5a, 0xfe)",
                                  path=path, offset=store + 0x14)
            end = store + vs.size
            if end > len(data) or vs.size < fmt.VARIABLE_STORE_HEADER_SIZE:
                raise FormatError(f"variable store size {vs.size:#x} runs past the file", path=path,
                                  offset=store + 0x10)
            return store + fmt.VARIABLE_STORE_HEADER_SIZE, end
        at += 0x1000
    raise FormatError("no OVMF variable store (no NV-data firmware volume '_FVH' with "
                      "EFI_SYSTEM_NV_DATA_FV_GUID): not an OVMF VARS file", path=path, offset=0)


def read_varstore(data, path=None):
    start, end = find_store(data, path)
    found, at = [], start
    while at + fmt.AUTHENTICATED_VARIABLE_HEADER_SIZE <= end:
        h = parse(fmt.AuthenticatedVariableHeader, data, at, "variable header", path)
        if h.start_id != fmt.VARIABLE_START_ID:
            break
        name_at = at + fmt.AUTHENTICATED_VARIABLE_HEADER_SIZE
        data_at = name_at + h.name_size
        nxt = data_at + h.data_size
        if nxt > end or h.name_size % 2:
            raise FormatError(f"variable at {at:#x}: NameSize {h.name_size:#x} + DataSize {h.data_size:#x} run "
                              f"past the store's end {end:#x}", path=path, offset=at + 0x24)
        # EDK2 compares names as CHAR16 arrays: a lone surrogate is a name too (kept as \xNN escapes).
        name = bytes(data[name_at:data_at]).decode("utf-16-le", "backslashreplace").split("\0", 1)[0]
        found.append(Variable(name, uuid.UUID(bytes_le=h.vendor_guid), h.attributes, bytes(data[data_at:nxt]),
                              at, h.state, h))
        at = nxt + (-nxt % fmt.VARIABLE_ALIGNMENT)
    live = {}
    for v in found:
        key = (v.name, v.guid)
        if v.state == fmt.VAR_ADDED:
            live[key] = v
        elif v.state == fmt.VAR_ADDED & fmt.VAR_IN_DELETED_TRANSITION and key not in live:
            live[key] = v
    store = VarStore(data, start, end, [v for v in found if live.get((v.name, v.guid)) is v])
    store._used_end = at
    return store


# EFI_TIME of the variables bootforge writes: fixed (same inputs, same bytes) and older than any
# real update, which must carry a later TimeStamp (EDK2 AuthService.c VerifyTimeBasedPayload).
FIXED_TIME = dict(year=2000, month=1, day=1, hour=0, minute=0, second=0, pad1=0, nanosecond=0, time_zone=0,
                  daylight=0, pad2=0)
ZERO_TIME = dict(FIXED_TIME, year=0, month=0, day=0)


def encode_variable(name, guid, attributes, data):
    """One AUTHENTICATED_VARIABLE_HEADER + UCS-2 name + data, padded with 0xFF to 4 bytes (erased
    flash, as EDK2's reclaim leaves it)."""
    raw_name = (name + "\0").encode("utf-16-le")
    timed = attributes & fmt.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS
    head = fmt.AuthenticatedVariableHeader.build(dict(
        start_id=fmt.VARIABLE_START_ID, state=fmt.VAR_ADDED, reserved=0, attributes=attributes, monotonic_count=0,
        timestamp=FIXED_TIME if timed else ZERO_TIME, pubkey_index=0, name_size=len(raw_name),
        data_size=len(data), vendor_guid=guid.bytes_le))
    blob = head + raw_name + data
    return blob + b"\xff" * (-len(blob) % fmt.VARIABLE_ALIGNMENT)


def write_varstore(template, replace, path=None):
    """*template* (an OVMF VARS file) with the variables [(name, guid, attributes, data)] of
    *replace* in place of any of the same name and GUID; the template's other live variables
    are kept byte for byte, in order, deleted copies dropped (what EDK2's reclaim does)."""
    store = read_varstore(template, path)
    names = {(n, g) for n, g, _, _ in replace}
    region = bytearray()
    for v in store.variables:
        if (v.name, v.guid) in names:
            continue
        end = v.offset + fmt.AUTHENTICATED_VARIABLE_HEADER_SIZE + v.header.name_size + v.header.data_size
        region += template[v.offset:end] + b"\xff" * (-(end - v.offset) % fmt.VARIABLE_ALIGNMENT)
    for n, g, a, d in replace:
        region += encode_variable(n, g, a, d)
    room = store.store_end - store.store_start
    if len(region) > room:
        raise FormatError(f"the variables take {len(region)} bytes, more than the store's {room}", path=path,
                          offset=store.store_start)
    return bytes(template[:store.store_start]) + bytes(region) + b"\xff" * (room - len(region)) + \
        bytes(template[store.store_end:])
