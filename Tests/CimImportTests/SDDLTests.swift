import Foundation
import XCTest
@testable import CimImport
import CimFS
import TestFixtures

/// SDDL (`MSWINDOWS.sd`) to self-relative descriptors, checked byte for byte
/// against descriptors laid out by hand from the documented format and
/// against the descriptors Windows wrote into the putty image.
final class SDDLTests: XCTestCase {
    static let administrators: [UInt8] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0]
    static let system: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]
    static let users: [UInt8] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0]

    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }

    func bytes(_ sddl: String, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        try SDDLParser.descriptor(sddl).bytes
    }

    /// Header, owner, group, (no SACL), DACL: offsets 0x14, 0x24, 0, 0x30.
    func testDescriptorLaidOutByHand() throws {
        let dacl: [UInt8] = [2, 0, 52, 0, 2, 0, 0, 0]
            + [0x00, 0x03, 20, 0] + Self.u32(0x1F01FF) + Self.system
            + [0x00, 0x00, 24, 0] + Self.u32(0x1200A9) + Self.users
        let expected: [UInt8] = [1, 0, 0x04, 0x94] + Self.u32(0x14) + Self.u32(0x24) + Self.u32(0) + Self.u32(0x30)
            + Self.administrators + Self.system + dacl
        XCTAssertEqual(try bytes("O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)"), expected)
        // The parts may come in any order; numbers may be decimal; spaces between parts are allowed.
        XCTAssertEqual(try bytes("D:PAI(A;CIOI;0x1F01FF;;;S-1-5-18)(A;;1179817;;;S-1-5-32-545) G:SY O:S-1-5-32-544"), expected)
        XCTAssertEqual(try bytes("D:NO_ACCESS_CONTROL"), LayerMetadata.nullSecurityDescriptor, "a null DACL is the null descriptor")
        XCTAssertEqual(try bytes("O:SY"), [1, 0, 0, 0x80] + Self.u32(0x14) + Self.u32(0) + Self.u32(0) + Self.u32(0) + Self.system)
        XCTAssertEqual(try bytes("D:"), [1, 0, 0x04, 0x80] + Self.u32(0) + Self.u32(0) + Self.u32(0) + Self.u32(0x14) + [2, 0, 8, 0, 0, 0, 0, 0],
                       "an empty DACL (nobody has access) differs from a null one")
    }

    /// Descriptors Windows layers carry as `MSWINDOWS.rawsd` (those of the
    /// mcr.microsoft.com/oss/kubernetes/pause image, as a public Windows layer
    /// builder records them beside their SDDL): the SDDL gives the same bytes.
    func testDescriptorsSeenInWindowsLayers() throws {
        let pairs = [
            ("O:BAG:SYD:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;LC;;;BU)(A;CI;DC;;;BU)",
             "AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgCoAAcAAAAAAxgA/wEfAAECAAAAAAAFIAAAACACAAAAAxQA/wEfAAEBAAAAAAAFEgAAAAAAGAD/AR8AAQIAAAAAAAUgAAAAIAIAAAALFAAAAAAQAQEAAAAAAAMAAAAAAAMYAKkAEgABAgAAAAAABSAAAAAhAgAAAAIYAAQAAAABAgAAAAAABSAAAAAhAgAAAAIYAAIAAAABAgAAAAAABSAAAAAhAgAA"),
            ("O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)",
             "AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgBMAAMAAAAAABgA/wEfAAECAAAAAAAFIAAAACACAAAAABQA/wEfAAEBAAAAAAAFEgAAAAAAGACpABIAAQIAAAAAAAUgAAAAIQIAAA=="),
        ]
        for (sddl, rawsd) in pairs {
            let expected = try XCTUnwrap(Base64.decode(rawsd))
            XCTAssertEqual(Hex.string(try bytes(sddl)), Hex.string(expected), sddl)
        }
    }

    func testRightsFlagsAliasesAndSACL() throws {
        let everyone: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        let appPackages: [UInt8] = [1, 2, 0, 0, 0, 0, 0, 15, 2, 0, 0, 0, 1, 0, 0, 0]
        let trustedInstaller: [UInt8] = [1, 6, 0, 0, 0, 0, 0, 5] + [80, 956_008_885, 3_418_522_649, 1_831_038_044, 1_853_292_631, 2_271_478_464].flatMap { Self.u32($0) }
        let mediumLabel: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 16] + Self.u32(8192)
        // DACL: deny AC generic read|write|execute (CI IO), allow WD registry read (NP ID) through a hex authority.
        let dacl: [UInt8] = [2, 0, 8 + 24 + 20, 0, 2, 0, 0, 0]
            + [0x01, 0x0A, 24, 0] + Self.u32(0xE000_0000) + appPackages
            + [0x00, 0x14, 20, 0] + Self.u32(0x20019) + everyone
        // SACL: audit success and failure of WD for WD|WO|SD, and a no-write-up medium label.
        let sacl: [UInt8] = [2, 0, 8 + 20 + 20, 0, 2, 0, 0, 0]
            + [0x02, 0xC0, 20, 0] + Self.u32(0xD0000) + everyone
            + [0x11, 0x00, 20, 0] + Self.u32(0x1) + mediumLabel
        let control: UInt16 = 0x8000 | 0x0004 | 0x0010 | 0x0100 | 0x0800 | 0x2000
        let expected: [UInt8] = [1, 0] + withUnsafeBytes(of: control.littleEndian, Array.init)
            + Self.u32(0x14) + Self.u32(0x14 + 32) + Self.u32(0x14 + 32 + 12) + Self.u32(0x14 + 32 + 12 + 48)
            + trustedInstaller + everyone + sacl + dacl
        XCTAssertEqual(try bytes("O:TIG:WDD:AR(D;CIIO;GRGWGX;;;AC)(A;NPID;KR;;;S-1-0x000000000001-0)S:PAI(AU;SAFA;WDWOSD;;;WD)(ML;;NW;;;ME)"), expected)
        XCTAssertEqual(try SDDLParser.descriptor("D:(A;;FR;;;AU)(A;;FW;;;CO)(A;;FX;;;OW)(A;;KA;;;CG)").dacl?.entries?.map(\.mask),
                       [0x120089, 0x120116, 0x1200A0, 0xF003F])
    }

    func testObjectACEs() throws {
        // bf967aba-0de6-11d0-a285-00aa003049e2: first three fields little-endian, the rest as written.
        let guid: [UInt8] = [0xBA, 0x7A, 0x96, 0xBF, 0xE6, 0x0D, 0xD0, 0x11, 0xA2, 0x85, 0x00, 0xAA, 0x00, 0x30, 0x49, 0xE2]
        let authenticated: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0]
        let ace: [UInt8] = [0x05, 0x02, 40, 0] + Self.u32(0x30) + Self.u32(1) + guid + authenticated
        let expected: [UInt8] = [1, 0, 0x04, 0x80] + Self.u32(0) + Self.u32(0) + Self.u32(0) + Self.u32(0x14) + [4, 0, 48, 0, 1, 0, 0, 0] + ace
        XCTAssertEqual(try bytes("D:(OA;CI;RPWP;bf967aba-0de6-11d0-a285-00aa003049e2;;AU)"), expected)
        let inherited = try SDDLParser.descriptor("D:(OD;;CR;;BF967ABA-0DE6-11D0-A285-00AA003049E2;WD)").dacl?.entries?.first
        XCTAssertEqual(inherited?.bytes, [0x06, 0x00, 40, 0] + Self.u32(0x100) + Self.u32(2) + guid + [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        // Neither GUID: Windows writes the plain ACE type (and the ACL stays revision 2).
        XCTAssertEqual(try bytes("D:(OA;;CC;;;WD)"), try bytes("D:(A;;CC;;;WD)"))
    }

    /// The descriptor Windows wrote on `AppxMetadata` in the putty image, without its
    /// first ACE (a conditional one, which SDDL text here does not express), as SDDL.
    func testWindowsDescriptorOfThePuttyImage() throws {
        let expected = try XCTUnwrap(Self.puttyDescriptors()["\\msix\\putty_1.0.1.0_x64__ynj0a7qyfqv8c\\AppxMetadata"])
        // Cut ACE 1 (108 bytes at the DACL's offset 0x40 + 8) and fix the ACL's size and count.
        var trimmed = Array(expected[0..<0x48]) + Array(expected[(0x48 + 108)...])
        trimmed[0x42] = UInt8((424 - 108) & 0xFF)
        trimmed[0x43] = UInt8((424 - 108) >> 8)
        trimmed[0x44] = 10
        let domain = "S-1-5-21-965744831-1325099889-3491064822"
        let sddl = "O:BAG:\(domain)-513D:AI"
            + "(A;OICIID;0x1200a9;;;S-1-15-3-2758795094-3194040121-4155196443-1510264769-2962424256-1045653239-2522784571)"
            + "(A;OICIID;FR;;;BU)(A;OICIID;FA;;;TI)"
            + "(A;OICIID;0x1200a9;;;S-1-15-3-1024-3635283841-2530182609-996808640-1887759898-3848208603-3313616867-983405619-2501854204)"
            + "(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;LS)(A;OICIID;0x1200a9;;;NS)(A;OICIID;0x1200a9;;;RC)"
            + "(A;OICIID;FA;;;\(domain)-1000)S:AINO_ACCESS_CONTROL"
        XCTAssertEqual(Hex.string(try bytes(sddl)), Hex.string(trimmed))
    }

    /// The whole descriptor Windows wrote on `\msix`, its conditional ACE included, from SDDL: byte for byte.
    func testConditionalACEOfThePuttyImage() throws {
        let expected = try XCTUnwrap(Self.puttyDescriptors()["\\msix"])
        let domain = "S-1-5-21-965744831-1325099889-3491064822"
        let sddl = "O:BAG:\(domain)-513D:AI"
            + "(XA;OICI;0x1200a9;;;BU;(WIN://SYSAPPID Contains \"putty_ynj0a7qyfqv8c\"))"
            + "(A;OICI;0x1200a9;;;S-1-15-3-2758795094-3194040121-4155196443-1510264769-2962424256-1045653239-2522784571)(A;OICI;FR;;;BU)"
            + "(A;OICIID;FA;;;TI)"
            + "(A;OICIID;0x1200a9;;;S-1-15-3-1024-3635283841-2530182609-996808640-1887759898-3848208603-3313616867-983405619-2501854204)"
            + "(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;LS)(A;OICIID;0x1200a9;;;NS)(A;OICIID;0x1200a9;;;RC)"
            + "(A;OICIID;FA;;;\(domain)-1000)S:AINO_ACCESS_CONTROL"
        XCTAssertEqual(Hex.string(try bytes(sddl)), Hex.string(expected))
    }

    /// Every token kind of a conditional expression, laid out by hand (postfix order, MS-DTYP 2.4.4.17).
    func testConditionalExpressionTokens() throws {
        func unicode(_ text: String) -> [UInt8] {
            Self.u32(UInt32(text.utf16.count * 2)) + text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        }
        func integer(_ value: Int64, sign: UInt8, base: UInt8) -> [UInt8] {
            [0x04] + withUnsafeBytes(of: value.littleEndian, Array.init) + [sign, base]
        }
        let memberOf: [UInt8] = [0x50] + Self.u32(UInt32(5 + Self.administrators.count)) + [0x51] + Self.u32(UInt32(Self.administrators.count)) + Self.administrators
        let list: [UInt8] = [0x10] + unicode("a") + integer(-16, sign: 2, base: 3) + integer(8, sign: 3, base: 1)
        var expression: [UInt8] = Array("artx".utf8)
        expression += [0xF9] + unicode("clearance") + integer(5, sign: 3, base: 2) + [0x85]
        expression += memberOf + [0x89, 0xA2, 0xA0]
        expression += [0xFA] + unicode("dept") + [0x87, 0xA1]
        expression += [0xFB] + unicode("x") + [0x50] + Self.u32(UInt32(list.count)) + list + [0x88, 0xA1]
        expression += [0xF8] + unicode("WIN://x") + [0x18] + Self.u32(2) + [0x0A, 0xFF] + [0x80, 0xA1]
        while expression.count % 4 != 0 { expression.append(0) }
        let condition = "(@User.clearance >= 5 && !(Member_of {SID(BA)}) || Exists @Resource.dept || @Device.x Any_of {\"a\", -0x10, 010} || WIN://x == #0aff)"
        let entry = try XCTUnwrap(try SDDLParser.descriptor("D:(XD;;FA;;;WD;\(condition))").dacl?.entries?.first)
        XCTAssertEqual(entry.type, 0x0A)
        XCTAssertEqual(Hex.string(entry.applicationData), Hex.string(expression))
        XCTAssertEqual(entry.bytes.count, 4 + 4 + 12 + expression.count)
        // A callback ACE without a condition, and an audit callback in the SACL.
        XCTAssertEqual(try SDDLParser.descriptor("D:(XA;;FA;;;WD)").dacl?.entries?.first?.bytes, [0x09, 0, 20, 0] + Self.u32(0x1F01FF) + [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        XCTAssertEqual(try SDDLParser.descriptor("S:(XU;SA;FA;;;WD;(x))").sacl?.entries?.first?.type, 0x0D)
    }

    func testBadSDDLIsRefusedWithTheReason() {
        let cases: [(String, String)] = [
            ("", "empty"),
            ("X:BA", "expected O:, G:, D: or S:"),
            ("O:BAO:SY", "twice"),
            ("O:QQ", "unknown SID alias \"QQ\""),
            ("O:DU", "relative to a domain"),
            ("O:S-1-5-", "not a SID"),
            ("O:S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "not a SID"),
            ("D:(A;;FA;;;WD", "not closed"),
            ("D:(A;;FA;;WD)", "fewer than six fields"),
            ("D:(ZA;;FA;;;WD)", "callback object ACE"),
            ("D:(XA;;FA;;;WD;(x ==))", "expected a value"),
            ("D:(XA;;FA;;;WD;(x == \"open))", "not closed"),
            ("D:(XA;;FA;;;WD;x)", "in parentheses"),
            ("D:(XA;;FA;;;WD;(x == 99999999999999999999))", "64-bit"),
            ("D:(XA;;FA;;;WD;(Member_of {SID(QQ)}))", "unknown SID alias"),
            ("D:(XA;;FA;;;WD;" + String(repeating: "(", count: 100) + "x" + String(repeating: ")", count: 100) + ")", "nests deeper"),
            ("D:(A;;FA;;;WD;x)", "more than six fields"),
            ("D:(Q;;FA;;;WD)", "unknown ACE type \"Q\""),
            ("D:(A;QQ;FA;;;WD)", "unknown ACE flag \"QQ\""),
            ("D:(A;;ZZ;;;WD)", "unknown access right \"ZZ\""),
            ("D:(A;;0xG;;;WD)", "32-bit hex"),
            ("D:(A;;99999999999;;;WD)", "32-bit number"),
            ("D:(A;;FA;nope;;WD)", "not a GUID"),
            ("D:(A;;FA;bf967aba-0de6-11d0-a285-00aa003049e2;;WD)", "takes no object GUIDs"),
            ("D:(AU;SA;FA;;;WD)", "belongs in the SACL"),
            ("S:(A;;FA;;;WD)", "belongs in the DACL"),
            ("D:NO_ACCESS_CONTROL(A;;FA;;;WD)", "cannot hold ACEs"),
            ("D:PQ", "unknown ACL flag"),
            ("D:(A;;FA;;;WD)x", "expected O:, G:, D: or S:"),
        ]
        for (text, fragment) in cases {
            XCTAssertThrowsError(try SDDLParser.descriptor(text), text) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(text): \(error)")
                XCTAssertTrue("\(error)".contains("at character"), "\(text): \(error)")
            }
        }
    }

    /// Damaged SDDL (characters replaced, dropped, doubled; odd Unicode) is refused or converted, never a crash.
    func testDamagedSDDLNeverCrashes() throws {
        let seeds = ["O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)S:AI(AU;SAFA;WD;;;WD)",
                     "D:(OA;CI;RPWP;bf967aba-0de6-11d0-a285-00aa003049e2;bf967aba-0de6-11d0-a285-00aa003049e2;S-1-0x000000000005-18)",
                     "O:S-1-5-21-1-2-3-500G:S-1-5-32-544D:NO_ACCESS_CONTROLS:P(ML;;NWNR;;;HI)",
                     "D:(XA;OICI;0x1200a9;;;BU;(WIN://SYSAPPID Contains \"p\" && !(@User.x >= -0x10 || Member_of {SID(BA), SID(S-1-5-18)}) || @Device.d Any_of {#0aff, 017}))"]
        let alphabet = Array("()-;:0123456789xXabcdefABCDEFGIOPSD_ \u{FF10}\u{FF41}é\u{1F600}")
        var state: UInt64 = 0x5DD1
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        var converted = 0, refused = 0
        for seed in seeds {
            for round in 0..<2000 {
                var characters = Array(seed)
                for _ in 0...(round % 4) {
                    let at = next() % characters.count
                    switch next() % 3 {
                    case 0: characters[at] = alphabet[next() % alphabet.count]
                    case 1: characters.remove(at: at)
                    default: characters.insert(characters[at], at: at)
                    }
                    if characters.isEmpty { characters = ["D"] }
                }
                do {
                    let descriptor = try SDDLParser.descriptor(String(characters))
                    XCTAssertEqual(descriptor.bytes.first, 1)
                    converted += 1
                } catch is SDDLParser.Failure {
                    refused += 1
                }
            }
        }
        XCTAssertGreaterThan(refused, 1000)
        XCTAssertGreaterThan(converted, 10)
    }

    /// Through the layer importer: SDDL-only entries get the converted descriptor; rawsd wins when both are there.
    func testLayerEntriesWithSDDL() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let imagePath = fixtures + "/sddl.cim"
        let summary = try LayerImporter.importLayer(from: try FileByteSource(path: fixtures + "/sddl.tar"), to: imagePath)
        XCTAssertEqual(summary.warnings, [])
        let image = try CimImage(path: imagePath)
        XCTAssertTrue(image.verify().isClean, "\(image.verify().problems)")
        XCTAssertEqual(try image.securityDescriptor(of: try image.lookup(path: "\\Files\\sddl.txt")),
                       try bytes("O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;;0x1200a9;;;BU)"))
        XCTAssertEqual(try image.securityDescriptor(of: try image.lookup(path: "\\Files\\both.txt")), LayerImportTests.sdA)
        XCTAssertEqual(try image.securityDescriptor(of: try image.lookup(path: "\\Files")), LayerMetadata.nullSecurityDescriptor)
    }

    /// `sd` of every entry of the putty image's manifest (Tests/Fixtures/real/putty/putty.expected.json), by path.
    static func puttyDescriptors() throws -> [String: [UInt8]] {
        let folder = try FixtureLocator.folder("real/putty").path
        let json = try XCTUnwrap(FileManager.default.contents(atPath: folder + "/putty.expected.json"))
        let listed = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [[String: Any]])
        var descriptors: [String: [UInt8]] = [:]
        for item in listed {
            guard let path = item["path"] as? String, let hex = item["sd"] as? String else { continue }
            let digits = Array(hex.utf8)
            descriptors[path] = stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) }
        }
        return descriptors
    }
}
