"""dtc 1.6's grammar (dgibson/dtc dtc-parser.y) as a recursive-descent parser.

It accepts what dtc's LALR parser accepts and builds the same live tree with
the same semantic actions, in the same order (merges of `&label { }`,
/delete-node/, orphan fragments of plugins). Like dtc, errors in actions
("Label or path x not found", "Value out of range ...") do not stop the
parse; the first error in source order is raised at the end, as one line
"file:line.column-column: message" (dtc prints them all, then FATAL ERROR).
A syntax error is reported at the token where no valid input can continue,
which is the token bison's "syntax error" names.
"""

import re
import struct

from bootforge.fdt.dts_lexer import MAX_VALUE, DtsError, srcpos_text
from bootforge.fdt.dts_tree import (
    LABEL, REF_PATH, REF_PHANDLE, DtInfo, Node, Prop, add_child, add_label, delete_node, get_node_by_ref,
    guess_boot_cpuid, merge_nodes,
)

U64 = (1 << 64) - 1
# Nodes nested deeper than this are refused (dtc has no limit; real trees stay under 16).
MAX_NESTING = 256


class _Abort(Exception):
    pass


class Parser:
    def __init__(self, lexer):
        self.lexer = lexer
        toks = lexer.tokens
        last = toks[-1] if toks else (None, None, 0, 0, 0)
        # At end of input bison's yylloc is still the last token's location.
        toks.append(("EOF", None, last[2], last[3], last[4]))
        self.t = toks
        self.i = 0
        self.errors = []            # (token index, message)
        self.plugin = False
        self.next_fragment = 0
        self.depth = 0
        self.label_nodes = {}       # label -> nodes it was put on (an index for get_node_by_label)

    # -- positions and errors

    def where(self, first, last):
        return srcpos_text(self.t, first, last, self.lexer.buffers)

    def error(self, first, last, message):
        """dtc's ERROR(): recorded, the parse goes on."""
        self.errors.append((self.i, f"{self.where(first, last)}: {message}"))

    def error_span(self, buf, start, end, message):
        """An error at a byte span of a buffer (a literal inside a CELLS token)."""
        self.errors.append((self.i, self.lexer.error_at(buf, start, end, message)))

    def fail(self, first, last, message):
        self.errors.append((self.i, f"{self.where(first, last)}: {message}"))
        raise _Abort()

    def syntax_error(self):
        self.fail(self.i, self.i, "syntax error")

    def expect(self, kind):
        if self.t[self.i][0] != kind:
            self.syntax_error()
        self.i += 1
        return self.i - 1

    # -- labels

    def register(self, label, node):
        nodes = self.label_nodes.setdefault(label, [])
        if not nodes or nodes[-1] is not node:
            nodes.append(node)

    def node_by_ref(self, root, ref):
        """get_node_by_ref, with labels looked up in the index: the one live holder of the
        label is dtc's answer; with several, dtc's depth-first walk decides."""
        if ref[0] == "/":
            return get_node_by_ref(root, ref)
        live = []
        for node in self.label_nodes.get(ref, ()):
            if node.merged_away or not any(name == ref and not dead for name, dead in node.labels):
                continue
            n = node
            while n is not root and n is not None and not n.deleted:
                n = n.parent
            if n is root and node not in live:
                live.append(node)
        if len(live) == 1:
            return live[0]
        return get_node_by_ref(root, ref) if live else None

    # -- grammar

    def parse(self):
        try:
            dti = self.sourcefile()
        except _Abort:
            dti = None
        lexer = self.lexer
        # The lexer's errors first: at the same token, dtc's lexer speaks before its parser.
        errors = list(lexer.errors)
        if lexer.fatal is not None:
            errors.append((len(self.t) - 1, lexer.fatal))
        errors += self.errors
        if errors:
            errors.sort(key=lambda e: e[0])
            raise DtsError(errors[0][1])
        return dti

    def sourcefile(self):
        flags = self.headers()
        self.plugin = bool(flags & 2)
        reservations = self.memreserves()
        root = self.devicetree()
        self.expect("EOF")
        dti = DtInfo(flags, reservations, root, guess_boot_cpuid(root),
                     srcpos=lambda pos: self.where(pos[0], pos[1]))
        return dti

    def headers(self):
        flags = None
        t = self.t
        while True:
            first = self.i
            self.expect("/dts-v1/")
            self.expect(";")
            f = 1
            if t[self.i][0] == "/plugin/":
                self.i += 1
                self.expect(";")
                f = 3
            if flags is None:
                flags = f
            elif f != flags:
                self.error(first, self.i - 1, "Header flags don't match earlier ones")
            if t[self.i][0] != "/dts-v1/":
                return flags

    def memreserves(self):
        out = []
        t = self.t
        while True:
            j = self.i
            while t[j][0] == "LABEL":
                j += 1
            if t[j][0] != "/memreserve/":
                if j != self.i:         # labels, then not /memreserve/
                    self.i = j
                    self.syntax_error()
                return out
            self.i = j + 1
            address = self.integer_prim()[0]
            size = self.integer_prim()[0]
            self.expect(";")
            out.append((address, size))

    def dt_ref(self):
        tok = self.t[self.i]
        if tok[0] != "REF" and tok[0] != "PATHREF":
            self.syntax_error()
        self.i += 1
        return tok[1]

    def devicetree(self):
        t = self.t
        kind = t[self.i][0]
        if kind == "/":
            self.i += 1
            root = self.nodedef()
            root.name = ""
        elif kind in ("REF", "PATHREF"):
            ref = self.dt_ref()
            at = self.i
            node = self.nodedef()
            if not self.plugin:
                self.error(at, self.i - 1, f"Label or path {ref} not found")
            root = Node(name="")
            self.add_orphan_node(root, node, ref)
        else:
            self.syntax_error()
        while True:
            kind = t[self.i][0]
            if kind == "/":
                self.i += 1
                merge_nodes(root, self.nodedef(), self.register)
            elif kind == "LABEL":
                label = t[self.i][1]
                self.i += 1
                at = self.i
                ref = self.dt_ref()
                node = self.nodedef()
                target = self.node_by_ref(root, ref)
                if target is not None:
                    add_label(target.labels, label)
                    self.register(label, target)
                    merge_nodes(target, node, self.register)
                else:
                    self.error(at, at, f"Label or path {ref} not found")
            elif kind == "PATHREF" or kind == "REF":
                at = self.i
                ref = t[at][1]
                self.i += 1
                node = self.nodedef()
                if kind == "PATHREF" and self.plugin:
                    self.add_orphan_node(root, node, ref)
                    continue
                target = self.node_by_ref(root, ref)
                if target is not None:
                    merge_nodes(target, node, self.register)
                elif self.plugin:
                    self.add_orphan_node(root, node, ref)
                else:
                    self.error(at, at, f"Label or path {ref} not found")
            elif kind == "/delete-node/" or kind == "/omit-if-no-ref/":
                self.i += 1
                at = self.i
                ref = self.dt_ref()
                self.expect(";")
                target = self.node_by_ref(root, ref)
                if target is None:
                    self.error(at, at, f"Label or path {ref} not found")
                elif kind == "/delete-node/":
                    delete_node(target)
                else:
                    target.omit_if_unused = True
            else:
                return root

    def add_orphan_node(self, root, node, ref):
        """dtc's add_orphan_node: /fragment@N/__overlay__ with target or target-path."""
        if ref[0] == "/":
            p = Prop("target-path", ref.encode("latin-1") + b"\0", typed=True)
        else:
            p = Prop("target", b"\xff\xff\xff\xff", [[0, REF_PHANDLE, ref]], typed=True)
        node.name = "__overlay__"
        frag = Node([p], [node], name=f"fragment@{self.next_fragment}")
        self.next_fragment += 1
        add_child(root, frag)

    def nodedef(self):
        t = self.t
        first = self.expect("{")
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(first, first, f"nodes nested deeper than {MAX_NESTING} levels")
        props = []
        children = []
        while True:
            j = self.i
            while t[j][0] == "LABEL":
                j += 1
            kind = t[j][0]
            if kind == "NAME":
                if t[j + 1][0] == "{":
                    break
                is_prop = True
            elif kind == "/delete-property/":
                is_prop = True
            else:
                break
            props.append(self.propdef())
        while True:
            j = self.i
            while t[j][0] == "LABEL":
                j += 1
            kind = t[j][0]
            if kind == "NAME" and t[j + 1][0] != "{" or kind == "/delete-property/":
                start = self.i
                self.propdef()
                self.fail(start, self.i - 1, "Properties must precede subnodes")
            if kind not in ("NAME", "/delete-node/", "/omit-if-no-ref/"):
                break
            children.append(self.subnode())
        self.expect("}")
        last = self.expect(";")
        self.depth -= 1
        node = Node(props, children, (first, last))
        return node

    def subnode(self):
        t = self.t
        labels = []
        while t[self.i][0] == "LABEL":
            labels.append(t[self.i][1])
            self.i += 1
        kind = t[self.i][0]
        if kind == "NAME":
            name = t[self.i][1]
            self.i += 1
            node = self.nodedef()
            node.name = name
        elif kind == "/delete-node/":
            first = self.i
            self.i += 1
            tok = t[self.i]
            if tok[0] != "NAME":
                self.syntax_error()
            self.i += 1
            last = self.expect(";")
            node = Node(pos=(first, last), name=tok[1], deleted=True)
        elif kind == "/omit-if-no-ref/":
            self.i += 1
            node = self.subnode()
            node.omit_if_unused = True
        else:
            self.syntax_error()
        for label in reversed(labels):
            add_label(node.labels, label)
            self.register(label, node)
        return node

    def propdef(self):
        t = self.t
        labels = []
        while t[self.i][0] == "LABEL":
            labels.append(t[self.i][1])
            self.i += 1
        tok = t[self.i]
        first = self.i
        if tok[0] == "/delete-property/":
            self.i += 1
            tok = t[self.i]
            if tok[0] != "NAME":
                self.syntax_error()
            self.i += 1
            self.expect(";")
            prop = Prop(tok[1], deleted=True)
        elif tok[0] == "NAME":
            self.i += 1
            nxt = t[self.i][0]
            if nxt == ";":
                self.i += 1
                prop = Prop(tok[1], b"", pos=(first, self.i - 1))
            elif nxt == "=":
                self.i += 1
                val, markers, typed = self.propdata()
                last = self.expect(";")
                prop = Prop(tok[1], val, markers, typed, pos=(first, last))
            else:
                self.syntax_error()
        else:
            self.syntax_error()
        for label in reversed(labels):
            add_label(prop.labels, label)
        return prop

    def propdata(self):
        t = self.t
        val = bytearray()
        markers = []
        typed = False
        while True:
            while t[self.i][0] == "LABEL":
                markers.append([len(val), LABEL, t[self.i][1]])
                typed = True
                self.i += 1
            kind = t[self.i][0]
            if kind == "STR":
                val += t[self.i][1]
                val.append(0)
                self.i += 1
                typed = True
            elif kind == "<" or kind == "/bits/":
                self.array(val, markers)
                typed = True
            elif kind == "[":
                self.i += 1
                while True:
                    tok = t[self.i]
                    if tok[0] == "BYTE":
                        val.append(tok[1])
                    elif tok[0] == "LABEL":
                        markers.append([len(val), LABEL, tok[1]])
                    else:
                        break
                    self.i += 1
                self.expect("]")
                typed = True
            elif kind == "REF" or kind == "PATHREF":
                markers.append([len(val), REF_PATH, t[self.i][1]])
                self.i += 1
                typed = True
            elif kind == "/incbin/":
                self.incbin(val)
            else:
                self.syntax_error()
            while t[self.i][0] == "LABEL":
                markers.append([len(val), LABEL, t[self.i][1]])
                typed = True
                self.i += 1
            if t[self.i][0] != ",":
                return val, markers, typed
            self.i += 1

    def array(self, val, markers):
        t = self.t
        bits = 32
        if t[self.i][0] == "/bits/":
            self.i += 1
            at = self.expect("INT")
            bits = t[at][1]
            if bits not in (8, 16, 32, 64):
                self.error(at, at, "Array elements must be 8, 16, 32 or 64-bits")
                bits = 32
        self.expect("<")
        values = []
        mask = (1 << bits) - 1
        size = bits // 8
        while True:
            i = self.i
            tok = t[i]
            kind = tok[0]
            if kind == "INT" or kind == "CHR":
                # The common case: a run of plain integers.
                append = values.append
                while True:
                    v = tok[1]
                    if v > mask and bits < 64 and (v | mask) != U64:
                        self.i = i
                        self.error(i, i, f"Value out of range for {bits}-bit array element")
                    append(v & mask)
                    i += 1
                    tok = t[i]
                    if tok[0] != "INT" and tok[0] != "CHR":
                        break
                self.i = i
                continue
            elif kind == "CELLS":                 # plain literals, lexed at once
                values_in = tok[1]
                if bits < 64 and max(values_in) > mask:
                    for v, (start, end) in zip(values_in, _literal_spans(self.lexer.buffers[tok[2]].data,
                                                                         tok[3], tok[4])):
                        if v > mask and (v | mask) != U64:
                            self.error_span(tok[2], start, end, f"Value out of range for {bits}-bit array element")
                    values += [v & mask for v in values_in]
                else:
                    values += values_in
                self.i = i + 1
                continue
            elif kind == "(":
                first = self.i
                v = self.integer_prim()[0]
                if bits < 64 and v > mask and (v | mask) != U64:
                    self.error(first, self.i - 1, f"Value out of range for {bits}-bit array element")
                values.append(v & mask)
            elif kind == "REF" or kind == "PATHREF":
                if bits == 32:
                    markers.append([len(val) + size * len(values), REF_PHANDLE, tok[1]])
                else:
                    self.error(self.i, self.i, "References are only allowed in arrays with 32-bit elements.")
                self.i += 1
                values.append(mask)
            elif kind == "LABEL":
                markers.append([len(val) + size * len(values), LABEL, tok[1]])
                self.i += 1
            else:
                break
        self.expect(">")
        if values:
            val += struct.pack(">" + "BHIQ"[size.bit_length() - 1] * len(values), *values)

    def incbin(self, val):
        """/incbin/("file"[, offset, length]): the file's bytes, relative to the including file."""
        t = self.t
        first = self.i
        self.i += 1
        self.expect("(")
        at = self.expect("STR")
        fname = t[at][1].split(b"\0", 1)[0].decode("latin-1")     # a C string to dtc: "a\0b" is "a"
        offset, length = 0, -1
        if t[self.i][0] == ",":
            self.i += 1
            offset = self.integer_prim()[0]
            self.expect(",")
            length = self.integer_prim()[0]
        last = self.expect(")")
        buf = self.lexer.buffers[t[at][2]]
        try:
            _, data = self.lexer.open_relative(fname, buf.dir)
        except OSError as exc:
            self.fail(first, last, f"Couldn't open \"{fname}\": {exc}")
        if offset > len(data):
            self.fail(first, last, f"Couldn't seek to offset {offset} in \"{fname}\"")
        end = len(data) if length < 0 or length == U64 else min(len(data), offset + length)
        if end - offset + len(val) > MAX_VALUE:
            self.fail(first, last, f"/incbin/ of {end - offset} bytes is longer than {MAX_VALUE} bytes "
                                   "(bootforge's limit for one property value)")
        val += data[offset:end]

    # -- integer expressions (C's operators and precedence, on uint64 as dtc computes)

    def integer_prim(self):
        """Returns (value, first token index)."""
        tok = self.t[self.i]
        kind = tok[0]
        if kind == "INT" or kind == "CHR":
            self.i += 1
            return tok[1], self.i - 1
        if kind == "(":
            first = self.i
            self.i += 1
            v = self.expr()
            self.expect(")")
            return v, first
        self.syntax_error()

    def expr(self):
        """integer_trinary: cond ? expr : trinary (right-associative)."""
        cond = self.climb(0)
        if self.t[self.i][0] != "?":
            return cond
        self.i += 1
        a = self.expr()
        self.expect(":")
        b = self.expr()
        return a if cond else b

    def climb(self, min_prec):
        """Binary operators by precedence climbing over dtc's levels (all left-associative);
        a division by zero is reported over the whole operand chain, dtc's @$ of integer_mul."""
        t = self.t
        first = self.i
        left = self.unary()
        while True:
            op = t[self.i][0]
            prec = _PREC.get(op)
            if prec is None or prec < min_prec:
                return left
            self.i += 1
            right = self.climb(prec + 1)
            if (op == "/" or op == "%") and right == 0:
                self.error(first, self.i - 1, "Division by zero")
                left = 0
                continue
            left = _APPLY[op](left, right) & U64

    def unary(self):
        tok = self.t[self.i]
        op = tok[0]
        if op == "INT" or op == "CHR":
            self.i += 1
            return tok[1]
        if op == "-":
            self.i += 1
            return -self.unary() & U64
        if op == "~":
            self.i += 1
            return ~self.unary() & U64
        if op == "!":
            self.i += 1
            return int(not self.unary())
        return self.integer_prim()[0]


_LEVELS = (("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"),
           ("+", "-"), ("*", "/", "%"))
_PREC = {op: level for level, ops in enumerate(_LEVELS) for op in ops}
_APPLY = {
    "||": lambda a, b: int(bool(a) or bool(b)), "&&": lambda a, b: int(bool(a) and bool(b)),
    "|": lambda a, b: a | b, "^": lambda a, b: a ^ b, "&": lambda a, b: a & b,
    "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
    "<": lambda a, b: int(a < b), ">": lambda a, b: int(a > b), "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
    "<<": lambda a, b: (a << b) if b < 64 else 0, ">>": lambda a, b: (a >> b) if b < 64 else 0,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a // b, "%": lambda a, b: a % b,
}


_LITERAL = re.compile(rb"0[xX][0-9a-fA-F]+|[0-9]+")


def _literal_spans(data, start, end):
    return [m.span() for m in _LITERAL.finditer(data, start, end)]


def parse_tokens(lexer):
    """The DtInfo of a lexed source, or DtsError with dtc's first message."""
    return Parser(lexer).parse()
