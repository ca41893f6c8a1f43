/// Wire constants of the NBD protocol (NetworkBlockDevice/nbd `doc/proto.md`).
///
/// All multi-byte fields are sent in network byte order.
enum NBDProtocol {
    // MARK: Handshake magics
    /// `NBDMAGIC`, first 8 bytes the server sends.
    static let initPasswd: UInt64 = 0x4e42_444d_4147_4943
    /// `IHAVEOPT`: newstyle greeting magic, also prefixed to every client option.
    static let optionMagic: UInt64 = 0x4948_4156_454f_5054
    /// Magic of every fixed-newstyle option reply.
    static let optionReplyMagic: UInt64 = 0x0003_e889_0455_65a9

    // MARK: Handshake flags (server, 16 bits)
    static let flagFixedNewstyle: UInt16 = 1 << 0
    static let flagNoZeroes: UInt16 = 1 << 1

    // MARK: Client flags (32 bits)
    static let clientFlagFixedNewstyle: UInt32 = 1 << 0
    static let clientFlagNoZeroes: UInt32 = 1 << 1

    // MARK: Transmission flags (16 bits)
    static let transmissionHasFlags: UInt16 = 1 << 0
    static let transmissionReadOnly: UInt16 = 1 << 1
    static let transmissionSendFlush: UInt16 = 1 << 2
    static let transmissionSendDF: UInt16 = 1 << 7
    static let transmissionCanMultiConn: UInt16 = 1 << 8
    static let transmissionSendCache: UInt16 = 1 << 10

    // MARK: Options
    static let optExportName: UInt32 = 1
    static let optAbort: UInt32 = 2
    static let optList: UInt32 = 3
    static let optStartTLS: UInt32 = 5
    static let optInfo: UInt32 = 6
    static let optGo: UInt32 = 7
    static let optStructuredReply: UInt32 = 8
    static let optListMetaContext: UInt32 = 9
    static let optSetMetaContext: UInt32 = 10

    // MARK: Option reply types
    static let repAck: UInt32 = 1
    static let repServer: UInt32 = 2
    static let repInfo: UInt32 = 3
    static let repMetaContext: UInt32 = 4
    static let repErrUnsup: UInt32 = 0x8000_0001
    static let repErrPolicy: UInt32 = 0x8000_0002
    static let repErrInvalid: UInt32 = 0x8000_0003
    static let repErrTLSReqd: UInt32 = 0x8000_0005
    static let repErrUnknown: UInt32 = 0x8000_0006
    static let repErrShutdown: UInt32 = 0x8000_0007
    static let repErrTooBig: UInt32 = 0x8000_0009

    // MARK: NBD_INFO types
    static let infoExport: UInt16 = 0
    static let infoName: UInt16 = 1
    static let infoDescription: UInt16 = 2
    static let infoBlockSize: UInt16 = 3

    // MARK: Transmission magics
    static let requestMagic: UInt32 = 0x2560_9513
    static let simpleReplyMagic: UInt32 = 0x6744_6698
    static let structuredReplyMagic: UInt32 = 0x668e_33ef

    // MARK: Commands
    static let cmdRead: UInt16 = 0
    static let cmdWrite: UInt16 = 1
    static let cmdDisc: UInt16 = 2
    static let cmdFlush: UInt16 = 3
    static let cmdTrim: UInt16 = 4
    static let cmdCache: UInt16 = 5
    static let cmdWriteZeroes: UInt16 = 6
    static let cmdBlockStatus: UInt16 = 7

    // MARK: Command flags
    static let cmdFlagFUA: UInt16 = 1 << 0
    static let cmdFlagDF: UInt16 = 1 << 2
    static let cmdFlagReqOne: UInt16 = 1 << 3

    // MARK: Structured replies
    static let replyFlagDone: UInt16 = 1 << 0
    static let replyTypeNone: UInt16 = 0
    static let replyTypeOffsetData: UInt16 = 1
    static let replyTypeOffsetHole: UInt16 = 2
    static let replyTypeBlockStatus: UInt16 = 5
    static let replyTypeError: UInt16 = 0x8001

    // MARK: base:allocation
    static let baseAllocation = "base:allocation"
    static let stateHole: UInt32 = 1 << 0
    static let stateZero: UInt32 = 1 << 1

    // MARK: Sizes
    /// Fixed size of a transmission request header.
    static let requestHeaderSize = 28
    /// Fixed size of an option request header (magic, option, length).
    static let optionHeaderSize = 16
    /// Longest string the protocol allows (export names, messages).
    static let maxStringLength = 4096
}

/// NBD error values (proto.md "Error values"); not necessarily the host's errno.
enum NBDError: UInt32, Sendable {
    case eperm = 1
    case eio = 5
    case enomem = 12
    case einval = 22
    case enospc = 28
    case eoverflow = 75
    case enotsup = 95
    case eshutdown = 108
}
