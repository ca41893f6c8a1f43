// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for cimnbd, kept out of the main package so that a normal
// `swift build` never compiles them. Build and run them with `tools/fuzz/run`
// (it passes `--sanitize=fuzzer --sanitize=address` and `-enable-testing`, the
// latter so the NBD targets can drive the server's internal connection handler).
let package = Package(
    name: "cimnbd-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "cimnbd", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.70.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // The CIM reader: open, walk, stat, read and verify an image given as bytes.
        .executableTarget(
            name: "FuzzCimReader",
            dependencies: [.product(name: "CimFS", package: "cimnbd")]
        ),
        // One NBD session against the real connection handler on an EmbeddedChannel.
        .target(
            name: "NBDFuzzSession",
            dependencies: [
                .product(name: "CimFS", package: "cimnbd"),
                .product(name: "VolumeSynth", package: "cimnbd"),
                .product(name: "NBDServer", package: "cimnbd"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The option phase: the input is everything a client sends after the greeting.
        .executableTarget(name: "FuzzNBDOptions", dependencies: ["NBDFuzzSession"]),
        // The transmission phase: a fixed handshake (NBD_OPT_GO), then the input as requests.
        .executableTarget(name: "FuzzNBDRequests", dependencies: ["NBDFuzzSession"]),
    ]
)
