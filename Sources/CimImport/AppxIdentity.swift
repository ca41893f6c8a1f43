import Crypto

/// The `<Identity>` of an MSIX package's `AppxManifest.xml` and the names
/// Windows derives from it.
public struct AppxIdentity: Sendable, Equatable {
    public var name: String
    public var version: String
    public var architecture: String
    public var resourceID: String
    public var publisher: String

    public init(name: String, version: String, architecture: String, resourceID: String, publisher: String) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.resourceID = resourceID
        self.publisher = publisher
    }

    /// `Name_Version_Architecture_ResourceId_PublisherId`.
    public var packageFullName: String {
        "\(name)_\(version)_\(architecture)_\(resourceID)_\(AppxIdentity.publisherID(publisher))"
    }

    /// `Name_PublisherId`: the package whatever its version, architecture and resource.
    public var packageFamilyName: String {
        "\(name)_\(AppxIdentity.publisherID(publisher))"
    }

    /// The first 8 bytes of SHA-256 of the UTF-16LE publisher string, as 13
    /// characters of `0123456789abcdefghjkmnpqrstvwxyz` (the 64 bits and one
    /// zero bit, 5 bits per character, most significant first).
    public static func publisherID(_ publisher: String) -> String {
        var bytes: [UInt8] = []
        for unit in publisher.utf16 { bytes.append(UInt8(unit & 0xFF)); bytes.append(UInt8(unit >> 8)) }
        let digest = Array(SHA256.hash(data: bytes))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        var text = ""
        for index in 0..<13 {
            // Bit positions of the 65-bit string (value followed by a 0 bit).
            let shift = 59 - 5 * index
            let chunk: UInt64 = shift >= 0 ? (value >> UInt64(shift)) & 31 : (value << UInt64(-shift)) & 31
            text.append(alphabet[Int(chunk)])
        }
        return text
    }

    /// Reads the `<Identity …/>` element of a manifest (UTF-8, with or without BOM).
    public static func parse(manifest bytes: [UInt8], path: String) throws -> AppxIdentity {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw ImportError.badPackage(path: path, entry: "AppxManifest.xml", problem: "is not UTF-8 text")
        }
        let attributes = try identityAttributes(text, path: path)
        func required(_ key: String) throws -> String {
            guard let value = attributes[key], !value.isEmpty else {
                throw ImportError.badPackage(path: path, entry: "AppxManifest.xml", problem: "<Identity> has no \(key) attribute")
            }
            return value
        }
        return AppxIdentity(name: try required("Name"), version: try required("Version"),
                            architecture: attributes["ProcessorArchitecture"] ?? "neutral",
                            resourceID: attributes["ResourceId"] ?? "", publisher: try required("Publisher"))
    }

    static func identityAttributes(_ text: String, path: String) throws -> [String: String] {
        let chars = Array(text.unicodeScalars)
        func fail(_ problem: String) -> ImportError { .badPackage(path: path, entry: "AppxManifest.xml", problem: problem) }
        var index = 0
        // Find `<Identity` or `<prefix:Identity` followed by whitespace, outside comments.
        while index < chars.count {
            if chars[index] == "<" {
                if index + 3 < chars.count, chars[index + 1] == "!", chars[index + 2] == "-", chars[index + 3] == "-" {
                    var end = index + 4
                    while end + 2 < chars.count, !(chars[end] == "-" && chars[end + 1] == "-" && chars[end + 2] == ">") { end += 1 }
                    index = end + 3
                    continue
                }
                var nameEnd = index + 1
                while nameEnd < chars.count, !chars[nameEnd].properties.isWhitespace, chars[nameEnd] != ">", chars[nameEnd] != "/" { nameEnd += 1 }
                let tag = String(String.UnicodeScalarView(chars[(index + 1)..<nameEnd]))
                let local = tag.split(separator: ":").last.map(String.init) ?? tag
                if local == "Identity" {
                    return try attributes(chars, from: nameEnd, fail: fail)
                }
                index = nameEnd
                continue
            }
            index += 1
        }
        throw fail("has no <Identity> element")
    }

    static func attributes(_ chars: [Unicode.Scalar], from start: Int, fail: (String) -> ImportError) throws -> [String: String] {
        var result: [String: String] = [:]
        var index = start
        while index < chars.count {
            while index < chars.count, chars[index].properties.isWhitespace { index += 1 }
            guard index < chars.count else { break }
            if chars[index] == ">" || chars[index] == "/" { return result }
            var keyEnd = index
            while keyEnd < chars.count, chars[keyEnd] != "=", !chars[keyEnd].properties.isWhitespace { keyEnd += 1 }
            let key = String(String.UnicodeScalarView(chars[index..<keyEnd]))
            index = keyEnd
            while index < chars.count, chars[index].properties.isWhitespace { index += 1 }
            guard index < chars.count, chars[index] == "=" else { throw fail("<Identity> attribute \(key) has no value") }
            index += 1
            while index < chars.count, chars[index].properties.isWhitespace { index += 1 }
            guard index < chars.count, chars[index] == "\"" || chars[index] == "'" else { throw fail("<Identity> attribute \(key) is not quoted") }
            let quote = chars[index]
            index += 1
            var valueEnd = index
            while valueEnd < chars.count, chars[valueEnd] != quote { valueEnd += 1 }
            guard valueEnd < chars.count else { throw fail("<Identity> attribute \(key) is not closed") }
            let local = key.split(separator: ":").last.map(String.init) ?? key
            result[local] = try decodeEntities(String(String.UnicodeScalarView(chars[index..<valueEnd])), fail: fail)
            index = valueEnd + 1
        }
        throw fail("<Identity> element is not closed")
    }

    static func decodeEntities(_ value: String, fail: (String) -> ImportError) throws -> String {
        guard value.contains("&") else { return value }
        var out = ""
        var rest = Substring(value)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { throw fail("unterminated entity in an <Identity> attribute") }
            let entity = rest[rest.index(after: amp)..<semicolon]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var scalar: Unicode.Scalar?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                } else if entity.hasPrefix("#") {
                    scalar = UInt32(entity.dropFirst(1)).flatMap(Unicode.Scalar.init)
                }
                guard let scalar else { throw fail("unknown entity &\(entity); in an <Identity> attribute") }
                out.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return out + rest
    }
}
