/// Conditional expressions of callback ACEs (`(XA;;FA;;;WD;(@User.Title == "PM"))`),
/// compiled to the binary form MS-DTYP 2.4.4.17 describes: `artx`, then the
/// tokens in postfix order, padded to 4 bytes.
///
/// - literals: integers (token 0x04: 8-byte value, sign byte 1 `+` / 2 `-` /
///   3 none, base byte 1 octal / 2 decimal / 3 hex), strings `"…"` (0x10,
///   UTF-16LE), octet strings `#hex` (0x18), `SID(…)` (0x51), composites
///   `{a, b}` (0x50);
/// - attributes: `@User.` (0xF9), `@Resource.` (0xFA), `@Device.` (0xFB), any
///   other name is a local attribute (0xF8), e.g. `WIN://SYSAPPID`;
/// - operators `==` `!=` `<` `<=` `>` `>=` `Contains` `Any_of` and their
///   `Not_` forms, `Member_of`-style SID tests, `Exists`, `!`, `&&`, `||`.
extension SDDLParser {
    static let maximumConditionDepth = 64

    private static let relational: [(String, UInt8)] = [
        ("==", 0x80), ("!=", 0x81), ("<=", 0x83), (">=", 0x85), ("<", 0x82), (">", 0x84),
    ]
    private static let namedBinary: [String: UInt8] = [
        "Contains": 0x86, "Any_of": 0x88, "Not_Contains": 0x8E, "Not_Any_of": 0x8F,
    ]
    private static let unary: [String: UInt8] = [
        "Exists": 0x87, "Not_Exists": 0x8D,
        "Member_of": 0x89, "Device_Member_of": 0x8A, "Member_of_Any": 0x8B, "Device_Member_of_Any": 0x8C,
        "Not_Member_of": 0x90, "Not_Device_Member_of": 0x91, "Not_Member_of_Any": 0x92, "Not_Device_Member_of_Any": 0x93,
    ]

    /// `(expression)` at the current position, as application data (`artx`… padded to 4).
    mutating func parseCondition() throws -> [UInt8] {
        skipSpaces()
        guard peek() == "(" else { throw fail("a condition must be in parentheses") }
        var tokens = Array("artx".utf8)
        try parseFactor(into: &tokens, depth: 0)
        while tokens.count % 4 != 0 { tokens.append(0) }
        return tokens
    }

    private mutating func parseOr(into tokens: inout [UInt8], depth: Int) throws {
        try parseAnd(into: &tokens, depth: depth)
        while consume("||") {
            try parseAnd(into: &tokens, depth: depth)
            tokens.append(0xA1)
        }
    }

    private mutating func parseAnd(into tokens: inout [UInt8], depth: Int) throws {
        try parseFactor(into: &tokens, depth: depth)
        while consume("&&") {
            try parseFactor(into: &tokens, depth: depth)
            tokens.append(0xA0)
        }
    }

    private mutating func parseFactor(into tokens: inout [UInt8], depth: Int) throws {
        guard depth < SDDLParser.maximumConditionDepth else { throw fail("the condition nests deeper than \(SDDLParser.maximumConditionDepth) levels") }
        skipSpaces()
        if consume("(") {
            try parseOr(into: &tokens, depth: depth + 1)
            guard consume(")") else { throw fail("expected \")\" in the condition") }
            return
        }
        if peek() == "!", peek(1) != "=" {
            position += 1
            try parseFactor(into: &tokens, depth: depth + 1)
            tokens.append(0xA2)
            return
        }
        let word = peekWord()
        if let op = SDDLParser.unary[word] {
            position += word.count
            skipSpaces()
            if op == 0x87 || op == 0x8D {
                try parseAttribute(into: &tokens)
            } else {
                try parseValue(into: &tokens, depth: depth + 1)
            }
            tokens.append(op)
            return
        }
        try parseAttribute(into: &tokens)
        skipSpaces()
        for (symbol, op) in SDDLParser.relational where consume(symbol) {
            try parseValue(into: &tokens, depth: depth + 1)
            tokens.append(op)
            return
        }
        let next = peekWord()
        if let op = SDDLParser.namedBinary[next] {
            position += next.count
            try parseValue(into: &tokens, depth: depth + 1)
            tokens.append(op)
        }
        // An attribute alone is a test of its value.
    }

    /// Letters, digits and `_` at the current position (after spaces).
    private mutating func peekWord() -> String {
        skipSpaces()
        var end = position
        while end < text.count, text[end].isASCII, text[end].isLetter || text[end].isNumber || text[end] == "_" { end += 1 }
        return String(text[position..<end])
    }

    private mutating func consume(_ symbol: String) -> Bool {
        skipSpaces()
        guard text[position...].starts(with: symbol) else { return false }
        position += symbol.count
        return true
    }

    private static func unicode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLittleEndian(UInt32(text.utf16.count * 2))
        for unit in text.utf16 { out.appendLittleEndian(unit) }
        return out
    }

    private mutating func parseAttribute(into tokens: inout [UInt8]) throws {
        skipSpaces()
        var token: UInt8 = 0xF8
        for (prefix, value) in [("@User.", UInt8(0xF9)), ("@Resource.", 0xFA), ("@Device.", 0xFB)] where text[position...].starts(with: prefix) {
            token = value
            position += prefix.count
        }
        let start = position
        while let c = peek(), c.isASCII, c.isLetter || c.isNumber || ":/._".contains(c) { position += 1 }
        if token == 0xF8, peek() == "{" || peek() == "\"" || start == position {
            throw fail("expected an attribute name (@User.…, @Resource.…, @Device.… or a local name)")
        }
        guard start < position else { throw fail("an attribute has no name") }
        tokens.append(token)
        tokens.append(contentsOf: SDDLParser.unicode(String(text[start..<position])))
    }

    private mutating func parseValue(into tokens: inout [UInt8], depth: Int) throws {
        guard depth < SDDLParser.maximumConditionDepth else { throw fail("the condition nests deeper than \(SDDLParser.maximumConditionDepth) levels") }
        skipSpaces()
        guard let c = peek() else { throw fail("the condition ends where a value was expected") }
        if c == "{" {
            position += 1
            var elements: [UInt8] = []
            skipSpaces()
            if !consume("}") {
                repeat { try parseValue(into: &elements, depth: depth + 1) } while consume(",")
                guard consume("}") else { throw fail("expected \"}\" closing a composite value") }
            }
            tokens.append(0x50)
            tokens.appendLittleEndian(UInt32(elements.count))
            tokens.append(contentsOf: elements)
        } else if c == "\"" {
            position += 1
            let start = position
            while let d = peek(), d != "\"" { position += 1 }
            guard peek() == "\"" else { throw fail("a string in the condition is not closed") }
            let value = String(text[start..<position])
            position += 1
            tokens.append(0x10)
            tokens.append(contentsOf: SDDLParser.unicode(value))
        } else if c == "#" {
            position += 1
            let start = position
            while let d = peek(), d.isASCII, d.isHexDigit { position += 1 }
            let digits = Array(String(text[start..<position]).utf8)
            guard digits.count % 2 == 0 else { throw fail("an octet string has an odd number of hex digits") }
            var bytes: [UInt8] = []
            for index in stride(from: 0, to: digits.count, by: 2) {
                guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { throw fail("bad octet string") }
                bytes.append(byte)
            }
            tokens.append(0x18)
            tokens.appendLittleEndian(UInt32(bytes.count))
            tokens.append(contentsOf: bytes)
        } else if text[position...].starts(with: "SID(") {
            position += 4
            let start = position
            while let d = peek(), d != ")" { position += 1 }
            guard peek() == ")" else { throw fail("SID( is not closed") }
            let sid = try parseWholeSID(String(text[start..<position]), at: start)
            position += 1
            let bytes = sid.bytes
            tokens.append(0x51)
            tokens.appendLittleEndian(UInt32(bytes.count))
            tokens.append(contentsOf: bytes)
        } else if c == "-" || c == "+" || c.isASCII && c.isNumber {
            try parseInteger(into: &tokens)
        } else {
            throw fail("expected a value (number, \"string\", #octets, SID(…) or {…})")
        }
    }

    private mutating func parseInteger(into tokens: inout [UInt8]) throws {
        var sign: UInt8 = 3
        if peek() == "-" { sign = 2; position += 1 } else if peek() == "+" { sign = 1; position += 1 }
        var base: UInt8 = 2
        var radix = 10
        if peek() == "0", peek(1) == "x" || peek(1) == "X" {
            base = 3; radix = 16; position += 2
        } else if peek() == "0", let next = peek(1), next.isASCII, next.isNumber {
            base = 1; radix = 8; position += 1
        }
        let start = position
        while let d = peek(), d.isASCII, d.isHexDigit { position += 1 }
        let digits = String(text[start..<position])
        guard !digits.isEmpty else { throw fail("a number has no digits") }
        guard let magnitude = UInt64(digits, radix: radix) else { throw fail("\"\(digits)\" is not a 64-bit number in base \(radix)") }
        let limit: UInt64 = sign == 2 ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        guard magnitude <= limit else { throw fail("\(digits) does not fit a signed 64-bit number") }
        let value: Int64 = sign == 2 ? (magnitude == limit ? Int64.min : -Int64(magnitude)) : Int64(magnitude)
        tokens.append(0x04)
        tokens.appendLittleEndian(value)
        tokens.append(sign)
        tokens.append(base)
    }
}
