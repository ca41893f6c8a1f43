// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "cimnbd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cimnbd", targets: ["cimnbd"]),
        .library(name: "CimFS", targets: ["CimFS"]),
        .library(name: "VolumeSynth", targets: ["VolumeSynth"]),
        .library(name: "NBDServer", targets: ["NBDServer"]),
        .library(name: "CimImport", targets: ["CimImport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.70.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Bottom layer: the CIM format (reader and writer). Depends on no other module of ours.
        .target(
            name: "CimFS",
            dependencies: [
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The `Volume` interface and the filesystem synthesizers (ext4 now).
        .target(
            name: "VolumeSynth",
            dependencies: ["CimFS"]
        ),
        // zlib (Debian: zlib1g-dev) and libzstd (libzstd-dev), for compressed layers and MSIX packages.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        // Importers: container layer tars and OCI image layouts → forked CIMs, MSIX packages → app-attach CIMs.
        .target(
            name: "CimImport",
            dependencies: [
                "CimFS", "CZlib", "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // C shim for NBDServer: cachestat(2), to serve page-cached file data without a thread hop.
        .target(name: "CPageCache"),
        // The NBD protocol server, on SwiftNIO.
        .target(
            name: "NBDServer",
            dependencies: [
                "CimFS", "VolumeSynth", "CPageCache",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libnbd (Debian: libnbd-dev), the NBD client the NBDServer tests drive.
        .systemLibrary(
            name: "CLibNBD",
            pkgConfig: "libnbd",
            providers: [.apt(["libnbd-dev"])]
        ),
        // C shim for NBDKernel (variadic ioctl is not callable from Swift).
        .target(name: "CNetlink"),
        // Kernel attach through netlink / ioctl.
        .target(
            name: "NBDKernel",
            dependencies: [
                "CNetlink",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Mount table, control API, state.
        .target(
            name: "MountService",
            dependencies: [
                "CimFS", "VolumeSynth", "NBDServer", "NBDKernel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // serve --metrics: counters through swift-metrics, exposed as Prometheus text over HTTP/1.1.
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "cimnbd",
            dependencies: [
                "CimFS", "VolumeSynth", "NBDServer", "NBDKernel", "MountService", "CimImport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Benchmark of the reader and translator on a real image (not a test): tools/bench/cim-read/run.sh
        .executableTarget(
            name: "cim-bench",
            dependencies: ["VolumeSynth", "CimFS"],
            path: "tools/bench/cim-read",
            exclude: ["run.sh", "ready.sh"]
        ),
        // Benchmark of the ext4 synthesizer (not a test): swift run -c release ext4-bench
        .executableTarget(
            name: "ext4-bench",
            dependencies: ["VolumeSynth", "CimFS"],
            path: "tools/bench/ext4-build",
            exclude: ["run.sh"]
        ),
        // Finds the test images kept in Tests/Fixtures (shared by the test targets; not a test itself).
        .target(name: "TestFixtures", path: "Tests/TestFixtures"),
        .testTarget(name: "CimFSTests", dependencies: ["CimFS", "TestFixtures", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "VolumeSynthTests", dependencies: ["VolumeSynth", "CimFS", "TestFixtures"]),
        .testTarget(
            name: "NBDServerTests",
            dependencies: [
                "NBDServer", "VolumeSynth", "CimFS", "CLibNBD", "NBDKernel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "NBDKernelTests", dependencies: ["NBDKernel"]),
        .testTarget(name: "CimImportTests", dependencies: ["CimImport", "CimFS", "VolumeSynth", "TestFixtures", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "MountServiceTests", dependencies: ["MountService", "CimFS", "VolumeSynth", "NBDServer", "TestFixtures"]),
    ]
)
