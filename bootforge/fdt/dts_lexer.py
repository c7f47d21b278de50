"""The tokens of dtc 1.6's source language (dgibson/dtc dtc-lexer.l, srcpos.c).

The lexer has dtc's four start conditions: INITIAL (before any keyword: no
integer literals), V1 (values), PROPNODENAME (after `{`, `;` and the
/delete-*/ and /omit-if-no-ref/ keywords: names) and BYTESTRING (inside
`[..]`), and flex's longest-match rule, which the order of the alternatives
in each state's pattern reproduces. `/include/` pushes a buffer, and cpp's
linemarkers (`# 12 "board.dtsi" 1`) rename the file and renumber its lines,
so positions name the original file and line, as dtc's do.

Tokens are (kind, value, buffer, start, end); line and column are computed
only when a message needs them (Buffer.line_col). A string literal is found
with bytes.find, never by a pattern over its whole length, and refused past
MAX_VALUE bytes before anything is copied.
"""

import bisect
import os
import re

from bootforge.errors import FormatError

# dtc's MAX_SRCFILE_DEPTH (srcpos.c).
MAX_INCLUDE_DEPTH = 200
# No property value (hence no literal) may be longer than a DTB can usefully hold here.
MAX_VALUE = 256 << 20


class DtsError(FormatError):
    """An error in DTS source; the message already starts with dtc's file:line.column."""

    def located(self, path=None, offset=None):
        return self


class Buffer:
    """One source file being read: its bytes, the name and line numbering linemarkers give it."""

    __slots__ = ("name", "dir", "data", "seg_offsets", "seg_info")

    def __init__(self, name, directory, data):
        self.name = name
        self.dir = directory
        self.data = data
        self.seg_offsets = [0]          # offset where a numbering starts
        self.seg_info = [(name, 1)]     # (file name, line number at that offset)

    def renumber(self, offset, name, line):
        self.seg_offsets.append(offset)
        self.seg_info.append((name, line))

    def line_col(self, offset):
        """(file name, line, column) of *offset*, as dtc's srcpos_update counts them."""
        i = bisect.bisect_right(self.seg_offsets, offset) - 1
        start = self.seg_offsets[i]
        name, line = self.seg_info[i]
        data = self.data
        if isinstance(data, bytes):
            line += data.count(b"\n", start, offset)
        else:                                   # a memory-mapped file: count in chunks
            for at in range(start, offset, 1 << 24):
                line += data[at:min(offset, at + (1 << 24))].count(b"\n")
        col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        return name, line, col


def srcpos_text(tokens, first, last, buffers):
    """dtc's srcpos_string for the span from token *first* to token *last*: file:L.C-C."""
    ft, lt = tokens[first], tokens[last]
    _, l1, c1 = buffers[ft[2]].line_col(ft[3])
    name, l2, c2 = buffers[lt[2]].line_col(lt[4])
    if l1 != l2:
        return f"{name}:{l1}.{c1}-{l2}.{c2}"
    if c1 != c2:
        return f"{name}:{l1}.{c1}-{c2}"
    return f"{name}:{l1}.{c1}"


INITIAL, V1, PROPNODENAME, BYTESTRING = range(4)
_INCLUDE = re.compile(rb'/include/[ \t\n\v\f\r]*"((?:[^\\"]|\\.)*)"')
_LINEMARKER = re.compile(rb'#(?:line)?[ \t]+([0-9]+)[ \t]+"((?:[^\\"\n]|\\.)*)"(?:[ \t]+[0-9]+)*')
# Character classes for the lexer's dispatch on a token's first byte.
_C_OTHER, _C_WS, _C_PUNCT, _C_WORD, _C_QUOTE, _C_SLASH, _C_HASH, _C_SQUOTE = range(8)
_CLASS = [_C_OTHER] * 256
for _b in b" \t\n\v\f\r":
    _CLASS[_b] = _C_WS
for _b in b"{};=,()[]<>~^%+-*?:.@!&|":
    _CLASS[_b] = _C_PUNCT
for _b in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_\\":
    _CLASS[_b] = _C_WORD
_CLASS[ord('"')] = _C_QUOTE
_CLASS[ord("/")] = _C_SLASH
_CLASS[ord("#")] = _C_HASH
_CLASS[ord("'")] = _C_SQUOTE
_CHARS = [chr(i) for i in range(256)]
# Bytes that continue or start a name in PROPNODENAME ([a-zA-Z0-9,._+*#?@-] and a leading \).
_PN_WORD_BYTES = frozenset(b",._+*#?@-")
_OP_START = frozenset(b"<>=!&|")
# A cell list of plain literals (hex, or decimal without a leading 0: int(v, 0) reads them as
# strtoull does), nothing else inside: lexed at once. Anything else takes the general path.
_CELLS_RE = re.compile(rb"<((?:[ \t\n\r]*+(?:0[xX][0-9a-fA-F]++|[1-9][0-9]*+|0)(?=[ \t\n\r>]))*+[ \t\n\r]*+)>")
_STATE_CHARS = frozenset(b"{;[]")
_OPS2 = frozenset((b"<<", b">>", b"<=", b">=", b"==", b"!=", b"&&", b"||"))
_SKIP_RE = re.compile(rb"(?:[ \t\n\v\f\r]+|/\*.*?\*/|//[^\n]*\n)*+", re.DOTALL)
# What a token starting with a word byte is, per state, longest match first.
_WORD_PN = re.compile(rb"(?P<label>[a-zA-Z_][a-zA-Z0-9_]*+):|(?P<name>\\?[a-zA-Z0-9,._+*#?@-]++)")
_WORD_V1 = re.compile(rb"(?P<label>[a-zA-Z_][a-zA-Z0-9_]*+):|(?P<int>(?:0[xX][0-9a-fA-F]++|[0-9]++)(?:ULL|UL|LL|U|L)?)")
_WORD_BS = re.compile(rb"(?P<label>[a-zA-Z_][a-zA-Z0-9_]*+):|(?P<byte>[0-9a-fA-F]{2})")
_REF_RE = re.compile(rb"&\{(?P<pathref>/[a-zA-Z0-9,._+*#?@/-]*+)\}|&(?P<ref>[a-zA-Z_][a-zA-Z0-9_]*+)")
_SLASH_RE = re.compile(rb'(?P<inc>/include/[ \t\n\v\f\r]*"(?:[^\\"]|\\.)*")'
                       rb"|(?P<kw>/(?:dts-v1|plugin|memreserve|bits|delete-property|delete-node|omit-if-no-ref|incbin)/)")
_CHAR_RE = re.compile(rb"'(?:\\'|[^'])*'")
_KEYWORD_STATE = {b"/dts-v1/": V1, b"/memreserve/": V1, b"/bits/": V1, b"/delete-property/": PROPNODENAME,
                  b"/delete-node/": PROPNODENAME, b"/omit-if-no-ref/": PROPNODENAME}
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13}
_OCTAL = b"01234567"
_HEX = b"0123456789abcdefABCDEF"


def unescape(raw):
    """dtc's data_copy_escape_string without the NUL: C escapes, \\NNN octal, \\xNN hex."""
    if b"\\" not in raw:
        return bytes(raw)
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        i += 1
        if c != 0x5C or i >= n:
            out.append(c)
            continue
        c = raw[i]
        i += 1
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c in _OCTAL:
            j = i - 1
            while j < n and j < i + 2 and raw[j] in _OCTAL:
                j += 1
            out.append(int(raw[i - 1:j], 8) & 0xFF)
            i = j
        elif c == ord("x"):
            j = i
            while j < n and j < i + 2 and raw[j] in _HEX:
                j += 1
            if j == i:
                raise ValueError("\\x used with no following hex digits")
            out.append(int(raw[i:j], 16))
            i = j
        else:
            out.append(c)
    return bytes(out)


class Lexer:
    """Turns a DTS file (and what it includes) into one token list."""

    def __init__(self, search_path=()):
        self.tokens = []
        self.buffers = []
        self.errors = []        # (token index, message with position): dtc's lexical_error
        self.search_path = list(search_path)
        self.state = INITIAL
        self.fatal = None

    def error_at(self, buf, start, end, message):
        b = self.buffers[buf]
        _, l1, c1 = b.line_col(start)
        name, l2, c2 = b.line_col(end)
        if l1 != l2:
            where = f"{name}:{l1}.{c1}-{l2}.{c2}"
        elif c1 != c2:
            where = f"{name}:{l1}.{c1}-{c2}"
        else:
            where = f"{name}:{l1}.{c1}"
        return f"{where}: {message}"

    def add_buffer(self, name, directory, data):
        self.buffers.append(Buffer(name, directory, data))
        return len(self.buffers) - 1

    def open_relative(self, fname, current_dir):
        """dtc's fopen_any_on_path: the including file's directory, then each -i directory."""
        fname = fname.split("\0", 1)[0]       # a C string to dtc (/incbin/'s name may hold "\0")
        candidates = [fname if (current_dir is None or fname.startswith("/")) else os.path.join(current_dir, fname)]
        candidates += [fname if fname.startswith("/") else os.path.join(d, fname) for d in self.search_path]
        error = None
        for path in candidates:
            try:
                with open(path, "rb") as f:
                    return path, _read_source(f, path)
            except IsADirectoryError:
                error = "Is a directory"
            except OSError as exc:
                error = error or (exc.strerror or str(exc))
        raise OSError(error)

    def run(self, buf, depth=1):
        """Tokenize buffer *buf*, recursing into /include/ files; returns False after a fatal error.

        Dispatch is on the token's first byte (flex's longest match only has choices to make
        for a few of them), so most tokens cost no pattern match at all."""
        b = self.buffers[buf]
        data = b.data
        n = len(data)
        pos = 0
        tokens = self.tokens
        append = tokens.append
        state = self.state
        skip = _SKIP_RE.match
        word_pn = _WORD_PN.match
        word_v1 = _WORD_V1.match
        word_bs = _WORD_BS.match
        classes = _CLASS
        while True:
            if pos >= n:
                break
            c = data[pos]
            cls = classes[c]
            if cls == _C_WS or (c == 0x2F and data[pos + 1:pos + 2] in (b"*", b"/")):
                if c == 0x20 and pos + 1 < n and classes[data[pos + 1]] > _C_WS and data[pos + 1] != 0x2F:
                    pos += 1                            # one space: the common case, no pattern
                else:
                    pos = skip(data, pos).end()
                if pos >= n:
                    break
                c = data[pos]
                cls = classes[c]
            if cls == _C_PUNCT:                         # { } ; = , ( ) [ ] ~ ^ % + - * ? : . @ ! & | < >
                if state == PROPNODENAME and c in _PN_WORD_BYTES:
                    cls = _C_WORD
                else:
                    end = pos + 1
                    if c in _OP_START:
                        if c == 0x3C and state == V1:   # <: a run of plain literals is one CELLS token
                            m = _CELLS_RE.match(data, pos)
                            if m is not None:
                                inner = m.group(1)
                                values = [int(v, 0) for v in inner.split()]
                                if values and max(values) < 1 << 64:
                                    gt = m.end() - 1
                                    append(("<", None, buf, pos, pos + 1))
                                    append(("CELLS", values, buf, m.start(1), gt))
                                    append((">", None, buf, gt, gt + 1))
                                    pos = gt + 1
                                    continue
                        two = data[pos:pos + 2]
                        if two in _OPS2:
                            append((two.decode("ascii"), None, buf, pos, pos + 2))
                            pos += 2
                            continue
                        if c == 0x26:                   # & : a reference?
                            m = _REF_RE.match(data, pos)
                            if m is not None:
                                if m.lastgroup == "ref":
                                    append(("REF", m.group("ref").decode("ascii"), buf, pos, m.end()))
                                else:
                                    append(("PATHREF", m.group("pathref").decode("latin-1"), buf, pos, m.end()))
                                pos = m.end()
                                continue
                    append((_CHARS[c], None, buf, pos, end))
                    if c in _STATE_CHARS:
                        if c == 0x7B or c == 0x3B:      # { ;
                            state = PROPNODENAME
                        elif c == 0x5B:                 # [
                            state = BYTESTRING
                        elif state == BYTESTRING:       # ]
                            state = V1
                    pos = end
                    continue
            if cls == _C_WORD:
                if state == PROPNODENAME:
                    m = word_pn(data, pos)
                elif state == BYTESTRING:
                    m = word_bs(data, pos)
                else:
                    m = word_v1(data, pos)
                if m is None:                           # a lone character
                    append((_CHARS[c], None, buf, pos, pos + 1))
                    pos += 1
                    continue
                kind = m.lastgroup
                end = m.end()
                if kind == "name":
                    text = m.group(kind)
                    if text[0] == 0x5C:
                        text = text[1:]
                    append(("NAME", text.decode("latin-1"), buf, pos, end))
                    state = V1
                elif kind == "int":
                    if state == INITIAL:                # <V1> rule: no integers before a keyword
                        append((_CHARS[c], None, buf, pos, pos + 1))
                        pos += 1
                        continue
                    append(("INT", self._integer(m.group(kind), buf, pos, end), buf, pos, end))
                elif kind == "label":
                    append(("LABEL", m.group(kind).decode("ascii"), buf, pos, end))
                elif kind == "byte":
                    append(("BYTE", int(m.group(kind), 16), buf, pos, end))
                else:                                   # "one": a character flex returns alone
                    append((_CHARS[c], None, buf, pos, pos + 1))
                    end = pos + 1
                pos = end
                continue
            if cls == _C_QUOTE:                         # a string, found with find()
                end = self._string_end(data, pos, n)
                if end is None:                         # no closing quote: dtc's '.' rule
                    append(('"', None, buf, pos, pos + 1))
                    pos += 1
                    continue
                if end < 0:
                    self.fatal = self.error_at(buf, pos, pos + 1, f"string literal longer than {MAX_VALUE} "
                                               "bytes (bootforge's limit for one property value)")
                    return False
                try:
                    value = unescape(data[pos + 1:end - 1])
                except ValueError as exc:
                    self.fatal = self.error_at(buf, pos, end, str(exc))
                    return False
                append(("STR", value, buf, pos, end))
                pos = end
                continue
            if cls == _C_SLASH:                         # / : keyword, /include/ or '/'
                m = _SLASH_RE.match(data, pos)
                if m is None:
                    append(("/", None, buf, pos, pos + 1))
                    pos += 1
                    continue
                if m.lastgroup == "inc":
                    self.state = state
                    if not self._include(buf, _INCLUDE.match(data, pos), depth):
                        return False
                    state = self.state
                    pos = m.end()
                    continue
                word = m.group("kw")
                if word == b"/incbin/" and state in (PROPNODENAME, BYTESTRING):
                    append(("/", None, buf, pos, pos + 1))
                    pos += 1
                    continue
                append((word.decode("ascii"), None, buf, pos, m.end()))
                new = _KEYWORD_STATE.get(word)
                if new is not None:
                    state = new
                pos = m.end()
                continue
            if cls == _C_HASH:
                if pos == 0 or data[pos - 1] == 0x0A:
                    lm = _LINEMARKER.match(data, pos)
                    if lm is not None:
                        try:
                            fn = unescape(lm.group(2))
                        except ValueError as exc:      # as in a string literal: the marker's position
                            self.fatal = self.error_at(buf, pos, lm.end(), str(exc))
                            return False
                        if b"\0" in fn:
                            self.errors.append((len(tokens), self.error_at(
                                buf, pos, lm.end(), "Lexical error: nul in line number directive")))
                        # "-1 since #line is the number of the next line" (dtc-lexer.l)
                        b.renumber(lm.end(), fn.decode("latin-1"), int(lm.group(1)) - 1)
                        pos = lm.end()
                        continue
                if state == PROPNODENAME:
                    m = word_pn(data, pos)
                    text = m.group("name")
                    append(("NAME", text.decode("latin-1"), buf, pos, m.end()))
                    state = V1
                    pos = m.end()
                    continue
                append(("#", None, buf, pos, pos + 1))
                pos += 1
                continue
            if cls == _C_SQUOTE:
                m = _CHAR_RE.match(data, pos)
                if m is not None:
                    end = m.end()
                    append(("CHR", self._char_literal(m.group(0), buf, pos, end), buf, pos, end))
                    pos = end
                    continue
            append((_CHARS[c], None, buf, pos, pos + 1))   # anything else: one character
            pos += 1
        self.state = state
        return True

    @staticmethod
    def _string_end(data, pos, n):
        """End offset (after the closing quote) of the string at *pos*; None when flex's STRING
        pattern does not match (no closing quote, or a backslash before a newline); -1 when
        it is longer than MAX_VALUE."""
        k = pos + 1
        while True:
            limit = min(n, k + MAX_VALUE + 1)
            q = data.find(b'"', k, limit)
            if q < 0:
                if limit < n:
                    return -1
                return None
            if q - pos > MAX_VALUE:
                return -1
            # Count the backslashes just before the quote: an odd number escapes it.
            j = q - 1
            while j > pos and data[j] == 0x5C:
                j -= 1
            if (q - 1 - j) % 2 == 0:
                if data.find(b"\\\n", pos, q) >= 0 and _STRING_RE.match(data, pos) is None:
                    return None
                return q + 1
            k = q + 1

    def _integer(self, text, buf, start, end):
        """strtoull(text, &e, 0) and dtc's two checks on it."""
        digits = text.rstrip(b"UL")
        if digits[:2] in (b"0x", b"0X"):
            value = int(digits[2:], 16)
            rest = b""
        elif digits[:1] == b"0" and len(digits) > 1:
            k = 1
            while k < len(digits) and digits[k] in _OCTAL:
                k += 1
            value = int(digits[:k], 8)
            rest = digits[k:]
        else:
            value = int(digits)
            rest = b""
        if rest:
            self.errors.append((len(self.tokens), self.error_at(
                buf, start, end, f"Lexical error: Bad integer literal '{text.decode()}'")))
        elif value >= 1 << 64:
            self.errors.append((len(self.tokens), self.error_at(
                buf, start, end, f"Lexical error: Integer literal '{text.decode()}' out of range")))
        return value & ((1 << 64) - 1)

    def _char_literal(self, text, buf, start, end):
        try:
            d = unescape(text[1:-1])
        except ValueError as exc:
            self.fatal = self.error_at(buf, start, end, str(exc))
            d = b"\0"
        if not d:
            self.errors.append((len(self.tokens), self.error_at(buf, start, end,
                                                                "Lexical error: Empty character literal")))
            return 0
        if len(d) > 1:
            self.errors.append((len(self.tokens), self.error_at(
                buf, start, end, f"Lexical error: Character literal has {len(d)} characters instead of 1")))
        return d[0]

    def _include(self, buf, m, depth):
        b = self.buffers[buf]
        # dtc takes the name as a C string: it ends at the first NUL (dtc-lexer.l -> srcfile_push;
        # dtc says `Couldn't open "nsp"` of /include/ "nsp\0dtsi").
        fname = m.group(1).split(b"\0", 1)[0].decode("latin-1")
        if depth >= MAX_INCLUDE_DEPTH:
            self.fatal = self.error_at(buf, m.start(), m.end(), f"Includes nested too deeply (/include/ \"{fname}\" "
                                       f"is {MAX_INCLUDE_DEPTH} files deep: an include cycle?)")
            return False
        try:
            path, data = self.open_relative(fname, b.dir)
        except OSError as exc:
            self.fatal = self.error_at(buf, m.start(), m.end(), f"Couldn't open \"{fname}\": {exc}")
            return False
        except FormatError as exc:
            self.fatal = self.error_at(buf, m.start(), m.end(), exc.message)
            return False
        slash = path.rfind("/")
        new = self.add_buffer(path, path[:slash] if slash >= 0 else None, data)
        return self.run(new, depth + 1)


_STRING_RE = re.compile(rb'"(?:[^\\"]|\\.)*"')


def _read_source(f, path):
    """The bytes of an open source file: read whole up to 64 MiB, memory-mapped beyond, so a
    huge file is scanned, never copied (a 2 GiB literal is refused by its length)."""
    # Function-level import: only huge sources are memory-mapped.
    import mmap
    size = os.fstat(f.fileno()).st_size
    if size > 64 << 20:
        if size > 1 << 40:
            raise FormatError(f"{size} bytes is too large for a DTS source", path=path)
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return f.read()


def read_source_file(path):
    """The bytes of the DTS file *path* (memory-mapped past 64 MiB)."""
    with open(path, "rb") as f:
        return _read_source(f, str(path))


def tokenize(name, data, search_path=(), directory=None):
    """Lex *data* (the bytes of file *name*); returns the Lexer (tokens, buffers, errors, fatal)."""
    lexer = Lexer(search_path)
    if directory is None:
        slash = name.rfind("/")
        directory = name[:slash] if slash >= 0 else None
    buf = lexer.add_buffer(name, directory, data)
    lexer.run(buf)
    return lexer
