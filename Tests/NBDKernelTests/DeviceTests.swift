import Foundation
import XCTest
@testable import NBDKernel

/// sysfs / mount-table logic against a fake root, and the no-module error on a host without nbd.
final class DeviceTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "nbdkernel-sysfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fm = FileManager.default
        func write(_ path: String, _ text: String) throws {
            try fm.createDirectory(atPath: (root + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: root + path, atomically: true, encoding: .utf8)
        }
        try write("/sys/block/nbd0/dev", "43:0\n")
        try write("/sys/block/nbd0/size", "196608\n")
        try write("/sys/block/nbd0/pid", "123\n")
        try write("/sys/block/nbd0/backend", "3F2A9C4E-5B1D-4E7A-9C2F-0D8E6B4A1C57\n")
        try write("/sys/block/nbd1/dev", "43:32\n")
        try write("/sys/block/nbd1/size", "0\n")
        try write("/sys/block/nbd1/backend", "\n")
        try write("/sys/block/nbd2/dev", "43:64\n")
        try write("/sys/block/nbd2/size", "2048\n")
        try write("/sys/block/nbd2/pid", "124\n")
        try write("/sys/block/nbd2/backend", "11111111-2222-3333-4444-555555555555\n")
        try write("/sys/block/nbd2/nbd2p1/dev", "43:65\n")
        try write("/sys/block/nbd12/dev", "43:384\n")
        try write("/sys/block/nbd12/size", "0\n")
        try write("/sys/block/sda/dev", "8:0\n")
        try write("/proc/self/mountinfo", """
            22 1 0:21 / / rw,relatime - ext4 /dev/root rw
            40 22 43:0 / /mnt/my\\040volume ro,relatime shared:1 - ext4 /dev/nbd0 ro
            41 22 43:65 / /srv/p1 ro,relatime - ext4 /dev/disk/by-uuid/x ro

            """)
        try write("/proc/mounts", """
            /dev/root / ext4 rw 0 0
            /dev/nbd0 /mnt/my\\040volume ext4 ro 0 0
            /dev/nbd10 /other ext4 ro 0 0

            """)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func testSysfsReads() {
        let s = NBDSysfs(root: root)
        XCTAssertEqual(s.deviceIndexes(), [0, 1, 2, 12])
        XCTAssertEqual(s.backend(0), "3F2A9C4E-5B1D-4E7A-9C2F-0D8E6B4A1C57")
        XCTAssertNil(s.backend(1))
        XCTAssertEqual(s.sizeBytes(0), 196608 * 512)
        XCTAssertEqual(s.pid(0), 123)
        XCTAssertNil(s.pid(1))
        XCTAssertEqual(s.firstFreeDevice(), 1)
    }

    func testResolveByPathAndGUID() throws {
        let s = NBDSysfs(root: root)
        XCTAssertEqual(try NBDDeviceManager.resolve("/dev/nbd12", sysfs: s), 12)
        XCTAssertEqual(try NBDDeviceManager.resolve("nbd2", sysfs: s), 2)
        // GUIDs compare case-insensitively
        XCTAssertEqual(try NBDDeviceManager.resolve("3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57", sysfs: s), 0)
        XCTAssertThrowsError(try NBDDeviceManager.resolve("/dev/nbd7", sysfs: s)) { error in
            XCTAssertEqual(error as? NBDKernelError, .deviceNotFound("/dev/nbd7"))
        }
        XCTAssertThrowsError(try NBDDeviceManager.resolve("99999999-0000-0000-0000-000000000000", sysfs: s)) { error in
            guard case NBDKernelError.deviceNotFound(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("99999999-0000-0000-0000-000000000000"))
        }
        XCTAssertThrowsError(try NBDDeviceManager.resolve("/dev/sda", sysfs: s))
    }

    func testMountPoints() {
        let s = NBDSysfs(root: root)
        XCTAssertEqual(s.mountPoints(0), ["/mnt/my volume"])
        // a partition mounted through a symlink name is found by device number
        XCTAssertEqual(s.mountPoints(2), ["/srv/p1"])
        // /dev/nbd10 is not /dev/nbd1
        XCTAssertEqual(s.mountPoints(1), [])
    }

    func testDetachRefusesWhenMounted() {
        let s = NBDSysfs(root: root)
        XCTAssertThrowsError(try NBDDeviceManager.detach("3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57", sysfs: s)) { error in
            XCTAssertEqual(error as? NBDKernelError, .deviceMounted(device: "/dev/nbd0", mountPoint: "/mnt/my volume"))
            XCTAssertEqual("\(error)", "/dev/nbd0 is mounted at /mnt/my volume; umount first")
        }
        XCTAssertThrowsError(try NBDDeviceManager.detach("/dev/nbd2", sysfs: s)) { error in
            XCTAssertEqual(error as? NBDKernelError, .deviceMounted(device: "/dev/nbd2", mountPoint: "/srv/p1"))
        }
    }

    /// On a host without the nbd module (this build host, CI), attach must tell the user to
    /// load it — before any network traffic.
    func testAttachWithoutModuleSaysModprobe() throws {
        let real = NBDSysfs()
        guard !NBDNetlink.isAvailable(), real.deviceIndexes().isEmpty else {
            throw XCTSkip("this host has the nbd module loaded")
        }
        let options = NBDAttachOptions(exportName: "3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57",
                                       server: NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: 1)))
        XCTAssertThrowsError(try NBDDeviceManager.attach(options, warn: { XCTFail("unexpected warning: \($0)") })) { error in
            XCTAssertEqual(error as? NBDKernelError, .moduleNotLoaded)
            XCTAssertTrue("\(error)".contains("modprobe nbd"), "\(error)")
        }
        XCTAssertThrowsError(try NBDDeviceManager.status()) { error in
            XCTAssertEqual(error as? NBDKernelError, .moduleNotLoaded)
        }
        XCTAssertThrowsError(try NBDDeviceManager.detach("/dev/nbd0")) { error in
            XCTAssertEqual(error as? NBDKernelError, .moduleNotLoaded)
        }
    }

    /// Netlink itself works on this host: the controller answers, and an unknown family is nil.
    func testGenericNetlinkControllerAnswers() throws {
        let sock = try GenericNetlinkSocket()
        // (family names are at most 15 bytes: GENL_NAMSIZ)
        XCTAssertNil(try sock.resolveFamily("cimnbd-nofam"))
        // nlctrl is always registered and describes itself
        let ctrl = try XCTUnwrap(try sock.resolveFamily("nlctrl"))
        XCTAssertEqual(ctrl.id, Netlink.GENL_ID_CTRL)
    }

    func testConnectionsBounds() {
        let options = NBDAttachOptions(exportName: "x", server: NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: 1)), connections: 17)
        XCTAssertThrowsError(try NBDDeviceManager.attach(options)) { error in
            guard case NBDKernelError.invalidArgument = error else { return XCTFail("\(error)") }
        }
    }
}
