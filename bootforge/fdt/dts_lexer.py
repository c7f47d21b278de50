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


# Whitespace and comments before a token are consumed by the same match (one match per token).
_SKIP = rb"(?:[ \t\n\v\f\r]+|/\*.*?\*/|//[^\n]*\n)*+"   # possessive: never given back
# Tokens handled by hand: a string's opening quote (found with find()), cpp's linemarker at a
# line start, /include/.
_SPECIAL = (rb'(?P<quote>")|(?P<lm>^#(?:line)?[ \t]+[0-9]+[ \t]+"(?:[^\\"\n]|\\.)*"(?:[ \t]+[0-9]+)*)'
            rb'|(?P<inc>/include/[ \t\n\v\f\r]*"(?:[^\\"]|\\.)*")')
_KEYWORDS = rb"(?P<kw>/(?:dts-v1|plugin|memreserve|bits|delete-property|delete-node|omit-if-no-ref%s)/)"
_LABEL = rb"(?P<label>[a-zA-Z_][a-zA-Z0-9_]*):"
_INT = rb"(?P<int>(?:0[xX][0-9a-fA-F]+|[0-9]+)(?:ULL|UL|LL|U|L)?)"
_NAME = rb"(?P<name>\\?[a-zA-Z0-9,._+*#?@-]+)"
_BYTE = rb"(?P<byte>[0-9a-fA-F]{2})"
_CHAR = rb"(?P<char>'(?:\\'|[^'])*')"
_REFS = rb"&\{(?P<pathref>/[a-zA-Z0-9,._+*#?@/-]*)\}|&(?P<ref>[a-zA-Z_][a-zA-Z0-9_]*)"
_OPS = rb"(?P<op><<|>>|<=|>=|==|!=|&&|\|\|)"
_ANY = rb"(?P<any>.)"


def _master(*parts):
    return re.compile(_SKIP + b"(?:" + b"|".join(parts) + b")", re.DOTALL | re.MULTILINE)


INITIAL, V1, PROPNODENAME, BYTESTRING = range(4)
_PATTERNS = {
    INITIAL: _master(_SPECIAL, _KEYWORDS % b"|incbin", _LABEL, _CHAR, _REFS, _OPS, _ANY),
    V1: _master(_SPECIAL, _KEYWORDS % b"|incbin", _LABEL, _INT, _CHAR, _REFS, _OPS, _ANY),
    PROPNODENAME: _master(_SPECIAL, _KEYWORDS % b"", _LABEL, _NAME, _CHAR, _REFS, _OPS, _ANY),
    BYTESTRING: _master(_SPECIAL, _KEYWORDS % b"", _LABEL, _BYTE, _CHAR, _REFS, _OPS, _ANY),
}
_INCLUDE = re.compile(rb'/include/[ \t\n\v\f\r]*"((?:[^\\"]|\\.)*)"')
_LINEMARKER = re.compile(rb'#(?:line)?[ \t]+([0-9]+)[ \t]+"((?:[^\\"\n]|\\.)*)"(?:[ \t]+[0-9]+)*')
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
        """Tokenize buffer *buf*, recursing into /include/ files; returns False after a fatal error."""
        b = self.buffers[buf]
        data = b.data
        n = len(data)
        pos = 0
        tokens = self.tokens
        append = tokens.append
        b = self.buffers[buf]
        state = self.state
        patterns = _PATTERNS
        pattern = patterns[state].match
        while pos < n:
            m = pattern(data, pos)
            if m is None:               # only whitespace and comments are left
                break
            kind = m.lastgroup
            end = m.end()
            if kind == "int":
                start = m.start(kind)
                append(("INT", self._integer(m.group(kind), buf, start, end), buf, start, end))
            elif kind == "any":
                start = end - 1
                ch = chr(data[start])
                append((ch, None, buf, start, end))
                if ch == "{" or ch == ";":
                    state = PROPNODENAME
                    pattern = patterns[state].match
                elif ch == "[":
                    state = BYTESTRING
                    pattern = patterns[state].match
                elif ch == "]" and state == BYTESTRING:
                    state = V1
                    pattern = patterns[state].match
            elif kind == "name":
                start = m.start(kind)
                text = m.group(kind)
                if text[0] == 0x5C:
                    text = text[1:]
                append(("NAME", text.decode("latin-1"), buf, start, end))
                state = V1
                pattern = patterns[state].match
            elif kind == "quote":                   # a string, found with find()
                start = end - 1
                end = self._string_end(data, start, n)
                if end is None:                     # no closing quote: dtc's '.' rule
                    append(('"', None, buf, start, start + 1))
                    pos = start + 1
                    continue
                if end < 0:
                    self.fatal = self.error_at(buf, start, start + 1, f"string literal longer than {MAX_VALUE} "
                                               "bytes (bootforge's limit for one property value)")
                    return False
                try:
                    value = unescape(data[start + 1:end - 1])
                except ValueError as exc:
                    self.fatal = self.error_at(buf, start, end, str(exc))
                    return False
                append(("STR", value, buf, start, end))
            elif kind == "label":
                append(("LABEL", m.group(kind).decode("ascii"), buf, m.start(kind), end))
            elif kind == "ref":
                append(("REF", m.group(kind).decode("ascii"), buf, m.start(kind) - 1, end))
            elif kind == "byte":
                append(("BYTE", int(m.group(kind), 16), buf, end - 2, end))
            elif kind == "kw":
                word = m.group(kind)
                append((word.decode("ascii"), None, buf, m.start(kind), end))
                new = _KEYWORD_STATE.get(word)
                if new is not None:
                    state = new
                    pattern = patterns[state].match
            elif kind == "op":
                append((m.group(kind).decode("ascii"), None, buf, end - 2, end))
            elif kind == "pathref":
                append(("PATHREF", m.group(kind).decode("latin-1"), buf, m.start(kind) - 2, end))
            elif kind == "char":
                start = m.start(kind)
                append(("CHR", self._char_literal(m.group(kind), buf, start, end), buf, start, end))
            elif kind == "lm":
                lm = _LINEMARKER.match(data, m.start(kind))
                fn = unescape(lm.group(2))
                if b"\0" in fn:
                    self.errors.append((len(tokens), self.error_at(
                        buf, lm.start(), end, "Lexical error: nul in line number directive")))
                # "-1 since #line is the number of the next line" (dtc-lexer.l)
                b.renumber(end, fn.decode("latin-1"), int(lm.group(1)) - 1)
            elif kind == "inc":
                inc = _INCLUDE.match(data, m.start(kind))
                self.state = state
                if not self._include(buf, inc, depth):
                    return False
                state = self.state
                pattern = patterns[state].match
            pos = end
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
        fname = m.group(1).decode("latin-1")
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
