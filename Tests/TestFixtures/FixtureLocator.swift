import Foundation

/// Finds the CIM test images kept in the repository under `Tests/Fixtures/`
/// (`cim/`: an independent writer's images, `real/`: images made by Windows).
///
/// A fixture that is missing is an error, never a reason to skip: a clone
/// that lost its fixtures must fail its tests. `$CIMNBD_FIXTURES` (one folder,
/// or several separated by `:`) replaces the repository's folders for
/// ``cases()``, so other image sets can be checked by the same tests.
public enum FixtureLocator {
    /// The repository's root (three levels above this file).
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `Tests/Fixtures` of the repository.
    public static var repositoryFixtures: URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures")
    }

    /// The folder of one fixture of the repository, e.g. `folder("cim/small")` or `folder("real/putty")`.
    public static func folder(_ relativePath: String) throws -> URL {
        let url = repositoryFixtures.appendingPathComponent(relativePath)
        guard isDirectory(url) else { throw FixtureError.missing(path: url.path) }
        return url
    }

    /// The `.cim` file of one fixture of the repository, e.g. `image("real/putty/putty.cim")`.
    public static func image(_ relativePath: String) throws -> String {
        let url = repositoryFixtures.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else { throw FixtureError.missing(path: url.path) }
        return url.path
    }

    /// The folders ``cases()`` searches: `$CIMNBD_FIXTURES`, else `Tests/Fixtures`.
    public static func roots() throws -> [URL] {
        if let override = ProcessInfo.processInfo.environment["CIMNBD_FIXTURES"], !override.isEmpty {
            let urls = override.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
            for url in urls where !isDirectory(url) { throw FixtureError.missing(path: url.path + " (from CIMNBD_FIXTURES)") }
            return urls
        }
        return [try folder("")]
    }

    /// Every image that has a manifest (`NAME.expected.json` beside `NAME.cim`)
    /// one or two folder levels below each root, so a root may be `Tests/Fixtures`
    /// itself or one of its `cim/` and `real/` folders. Sorted by image path.
    public static func cases() throws -> [FixtureCase] {
        var result: [FixtureCase] = []
        for root in try roots() {
            for folder in try subfolders(root) {
                let inFolder = try manifests(in: folder)
                if !inFolder.isEmpty {
                    result += inFolder
                    continue
                }
                for nested in try subfolders(folder) { result += try manifests(in: nested) }
            }
        }
        guard !result.isEmpty else { throw FixtureError.noCases(roots: try roots().map(\.path)) }
        return result.sorted { $0.image < $1.image }
    }

    private static func isDirectory(_ url: URL) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
    }

    private static func subfolders(_ url: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
            .map { url.appendingPathComponent($0) }
            .filter(isDirectory)
    }

    private static func manifests(in folder: URL) throws -> [FixtureCase] {
        var result: [FixtureCase] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".expected.json") {
            let name = String(file.dropLast(".expected.json".count))
            let image = folder.appendingPathComponent(name + ".cim").path
            guard FileManager.default.fileExists(atPath: image) else { throw FixtureError.missing(path: image) }
            result.append(FixtureCase(image: image, manifest: folder.appendingPathComponent(file).path))
        }
        return result
    }
}

/// One fixture image and the manifest a correct reader reports for it.
public struct FixtureCase: Sendable {
    /// Path of the `.cim` file.
    public var image: String
    /// Path of `NAME.expected.json`.
    public var manifest: String
    /// The folder's name (`small`, `putty`…).
    public var folderName: String { URL(fileURLWithPath: image).deletingLastPathComponent().lastPathComponent }
    /// True for images made by Windows (a `real/` folder).
    public var isMadeByWindows: Bool {
        URL(fileURLWithPath: image).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent == "real"
    }
}

/// Why a fixture could not be found.
public enum FixtureError: Error, CustomStringConvertible {
    case missing(path: String)
    case noCases(roots: [String])

    public var description: String {
        switch self {
        case .missing(let path): return "test fixture missing: \(path) (the fixtures live in Tests/Fixtures of the repository)"
        case .noCases(let roots): return "no fixture images (NAME.cim with NAME.expected.json) below \(roots.joined(separator: ", "))"
        }
    }
}
