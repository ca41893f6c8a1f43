import XCTest
@testable import NBDKernel

/// Netlink bytes checked against layouts computed by hand from linux/netlink.h:
/// nlattr = u16 len (header + payload, unpadded), u16 type, payload, pad to 4.
/// All integers are host order (little-endian on the machines we run on).
final class NetlinkEncodingTests: XCTestCase {
    override func setUp() {
        // The hand-computed bytes below are little-endian.
        XCTAssertEqual(1.littleEndian, 1)
    }

    func testU32Attribute() {
        XCTAssertEqual(NetlinkAttribute.u32(1, 7).encoded(), [8, 0, 1, 0, 7, 0, 0, 0])
    }

    func testU64Attribute() {
        XCTAssertEqual(NetlinkAttribute.u64(2, 0x0102_0304_0506_0708).encoded(),
                       [12, 0, 2, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    }

    func testU8AttributeIsPadded() {
        // len 5, padded to 8
        XCTAssertEqual(NetlinkAttribute.u8(2, 1).encoded(), [5, 0, 2, 0, 1, 0, 0, 0])
    }

    func testStringAttributeNulTerminatedAndPadded() {
        // "nbd\0" = 4 bytes → len 8, no padding
        XCTAssertEqual(NetlinkAttribute.string(2, "nbd").encoded(), [8, 0, 2, 0, 0x6e, 0x62, 0x64, 0])
        // "ab\0" = 3 bytes → len 7, one pad byte
        XCTAssertEqual(NetlinkAttribute.string(10, "ab").encoded(), [7, 0, 10, 0, 0x61, 0x62, 0, 0])
    }

    func testNestedSocketsAttribute() {
        // NBD_ATTR_SOCKETS(7, nested) { NBD_SOCK_ITEM(1, nested) { NBD_SOCK_FD(1) u32 } } for fds 3 and 4
        let attr = NBDNetlink.socketsAttribute([3, 4])
        let item3: [UInt8] = [12, 0, 1, 0x80, 8, 0, 1, 0, 3, 0, 0, 0]
        let item4: [UInt8] = [12, 0, 1, 0x80, 8, 0, 1, 0, 4, 0, 0, 0]
        XCTAssertEqual(attr.encoded(), [28, 0, 7, 0x80] + item3 + item4)
    }

    func testGetFamilyMessage() {
        let msg = GenericNetlinkMessage(family: Netlink.GENL_ID_CTRL, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK,
                                        sequence: 0x11223344, portID: 0, command: Netlink.CTRL_CMD_GETFAMILY, version: 1,
                                        attributes: [.string(Netlink.CTRL_ATTR_FAMILY_NAME, "nbd")])
        let expected: [UInt8] = [
            28, 0, 0, 0,             // nlmsg_len = 16 + 4 + 8
            0x10, 0,                 // GENL_ID_CTRL
            5, 0,                    // NLM_F_REQUEST | NLM_F_ACK
            0x44, 0x33, 0x22, 0x11,  // seq
            0, 0, 0, 0,              // pid
            3, 1, 0, 0,              // CTRL_CMD_GETFAMILY, version 1
            8, 0, 2, 0, 0x6e, 0x62, 0x64, 0,
        ]
        XCTAssertEqual(msg.encoded(), expected)
    }

    func testConnectRequestLayout() {
        let req = NBDConnectRequest(index: nil, sizeBytes: 1 << 20, blockSizeBytes: 4096, serverFlags: 0x103,
                                    timeoutSeconds: 30, deadConnTimeoutSeconds: 120, socketFDs: [5],
                                    backendIdentifier: "g")
        let bytes = GenericNetlinkMessage(family: 0x20, sequence: 1, command: NBDNetlinkConstants.CMD_CONNECT,
                                          attributes: req.attributes).encoded()
        var expected: [UInt8] = []
        expected += [12, 0, 2, 0, 0, 0, 0x10, 0, 0, 0, 0, 0]        // SIZE_BYTES 1 MiB
        expected += [12, 0, 3, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]        // BLOCK_SIZE_BYTES 4096
        expected += [12, 0, 5, 0, 3, 1, 0, 0, 0, 0, 0, 0]           // SERVER_FLAGS 0x103
        expected += [12, 0, 4, 0, 30, 0, 0, 0, 0, 0, 0, 0]          // TIMEOUT
        expected += [12, 0, 8, 0, 120, 0, 0, 0, 0, 0, 0, 0]         // DEAD_CONN_TIMEOUT
        expected += [16, 0, 7, 0x80, 12, 0, 1, 0x80, 8, 0, 1, 0, 5, 0, 0, 0]  // SOCKETS
        expected += [6, 0, 10, 0, 0x67, 0, 0, 0]                    // BACKEND_IDENTIFIER "g"
        let header: [UInt8] = [UInt8(20 + expected.count), 0, 0, 0, 0x20, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                               1, 1, 0, 0]
        XCTAssertEqual(bytes, header + expected)
        // With an index, NBD_ATTR_INDEX comes first.
        var withIndex = req
        withIndex.index = 3
        XCTAssertEqual(withIndex.attributes.first?.encoded(), [8, 0, 1, 0, 3, 0, 0, 0])
    }

    func testParseStatusReply() throws {
        // A kernel NBD_CMD_STATUS reply: DEVICE_LIST (no NLA_F_NESTED, as the kernel's
        // nla_nest_start_noflag writes it) with two DEVICE_ITEMs.
        let item0: [UInt8] = [20, 0, 1, 0, 8, 0, 1, 0, 0, 0, 0, 0, 5, 0, 2, 0, 1, 0, 0, 0]  // index 0, connected 1
        let item1: [UInt8] = [20, 0, 1, 0, 8, 0, 1, 0, 1, 0, 0, 0, 5, 0, 2, 0, 0, 0, 0, 0]  // index 1, connected 0
        let list: [UInt8] = [UInt8(4 + item0.count + item1.count), 0, 9, 0] + item0 + item1
        let body: [UInt8] = [5, 1, 0, 0] + list
        let msg: [UInt8] = [UInt8(16 + body.count), 0, 0, 0, 0x21, 0, 0, 0, 9, 0, 0, 0, 0x2a, 0, 0, 0] + body
        let replies = try NetlinkReply.parse(msg)
        XCTAssertEqual(replies.count, 1)
        guard case .message(let m) = replies[0] else { return XCTFail("not a message: \(replies)") }
        XCTAssertEqual(m.family, 0x21)
        XCTAssertEqual(m.sequence, 9)
        XCTAssertEqual(m.portID, 0x2a)
        XCTAssertEqual(m.command, NBDNetlinkConstants.CMD_STATUS)
        XCTAssertEqual(try NBDNetlink.parseDeviceList(m.attributes),
                       [NBDDeviceStatus(index: 0, connected: true), NBDDeviceStatus(index: 1, connected: false)])
    }

    func testParseErrorAndAck() throws {
        // NLMSG_ERROR with error -16 (EBUSY), echoing a 20-byte request header; then an ACK.
        var err: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]
        err += [0xf0, 0xff, 0xff, 0xff]                    // -16
        err += [20, 0, 0, 0, 0x21, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0]  // original nlmsghdr
        let ack: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            20, 0, 0, 0, 0x21, 0, 5, 0, 8, 0, 0, 0, 0, 0, 0, 0]
        let replies = try NetlinkReply.parse(err + ack)
        XCTAssertEqual(replies, [.error(sequence: 7, errno: 16, extAckMessage: nil),
                                 .error(sequence: 8, errno: 0, extAckMessage: nil)])
    }

    func testParseFamilyWithMulticastGroups() throws {
        // CTRL_ATTR_FAMILY_ID u16 0x21, CTRL_ATTR_MCAST_GROUPS { [1] { GRP_NAME "nbd_mc_group", GRP_ID 9 } }
        let name: [UInt8] = Array("nbd_mc_group".utf8) + [0]              // 13 bytes → len 17, pad 3
        let grpName: [UInt8] = [17, 0, 1, 0] + name + [0, 0, 0]
        let grpID: [UInt8] = [8, 0, 2, 0, 9, 0, 0, 0]
        let entry: [UInt8] = [UInt8(4 + grpName.count + grpID.count), 0, 1, 0x80] + grpName + grpID
        let groups: [UInt8] = [UInt8(4 + entry.count), 0, 7, 0x80] + entry
        let attrs = try NetlinkAttribute.parse([6, 0, 1, 0, 0x21, 0, 0, 0] + groups)
        XCTAssertEqual(attrs.first(type: Netlink.CTRL_ATTR_FAMILY_ID)?.u16Value, 0x21)
        XCTAssertEqual(try GenericNetlinkSocket.multicastGroups(attrs), ["nbd_mc_group": 9])
    }

    func testRoundTripNested() throws {
        let attr = NetlinkAttribute.nested(9, [.u32(1, 42), .u8(2, 1), .string(3, "hello")])
        let parsed = try NetlinkAttribute.parse(attr.encoded())
        XCTAssertEqual(parsed.count, 1)
        XCTAssertTrue(parsed[0].isNested)
        let kids = try parsed[0].children()
        XCTAssertEqual(kids.map(\.type), [1, 2, 3])
        XCTAssertEqual(kids[0].u32Value, 42)
        XCTAssertEqual(kids[1].u8Value, 1)
        XCTAssertEqual(kids[2].stringValue, "hello")
    }

    func testTruncatedAttributeIsAnError() {
        XCTAssertThrowsError(try NetlinkAttribute.parse([12, 0, 1, 0, 1, 2, 3, 4])) { error in
            guard case NBDKernelError.netlinkProtocol = error else { return XCTFail("\(error)") }
        }
    }

    func testIoctlNumbers() {
        // _IO(0xab, n) from linux/nbd.h
        XCTAssertEqual(NBDIoctl.SET_SOCK, 0xab00)
        XCTAssertEqual(NBDIoctl.DO_IT, 0xab03)
        XCTAssertEqual(NBDIoctl.SET_FLAGS, 0xab0a)
    }
}
