// swift-tools-version:5.9
// The Swift side of bottle: BottleKit (the generated uniffi bindings plus the
// app's non-UI model) and the menu-bar app. Rust does the work; see macos-app/README.md.
//
// On macOS the Rust library comes as an XCFramework built by
// scripts/build-xcframework.sh (cargo-swift). On Linux, where only the checks
// run (scripts/swift-check.sh), the same manifest links the cdylib from the
// cargo target directory instead, and leaves out what Debian's Swift cannot
// compile at all (SwiftUI, AppKit, UserNotifications: the app target), which
// swift-check.sh parses on its own. AppModel builds there without Observation,
// which Debian's Swift cannot link (see AppModel.swift).
import Foundation
import PackageDescription

let ffiTarget: Target
let ffiName: String
let kitLinker: [LinkerSetting]
let appTargets: [Target]
let appProducts: [Product]

#if os(Linux)
let cargoTarget = ProcessInfo.processInfo.environment["CARGO_TARGET_DIR"] ?? "\(Context.packageDirectory)/target"
let rustLibDir = ProcessInfo.processInfo.environment["BOTTLE_FFI_LIB_DIR"] ?? "\(cargoTarget)/debug"
ffiName = "bottle_ffiFFI"
ffiTarget = .systemLibrary(name: ffiName, path: "swift/BottleFFI")
kitLinker = [.unsafeFlags(["-L", rustLibDir, "-Xlinker", "-rpath", "-Xlinker", rustLibDir])]
appTargets = []
appProducts = []
#else
ffiName = "BottleFFIRust"
ffiTarget = .binaryTarget(name: ffiName, path: "swift/BottleFFIRust.xcframework")
kitLinker = []
appTargets = [
    .executableTarget(
        name: "BottleApp",
        dependencies: ["BottleKit"],
        path: "macos-app/Sources/BottleApp"
    ),
]
appProducts = [.executable(name: "BottleApp", targets: ["BottleApp"])]
#endif

let package = Package(
    name: "bottle",
    platforms: [.macOS(.v14)],
    products: [.library(name: "BottleKit", targets: ["BottleKit"])] + appProducts,
    targets: [
        ffiTarget,
        .target(
            name: "BottleKit",
            dependencies: [.target(name: ffiName)],
            path: "swift/BottleKit",
            linkerSettings: kitLinker
        ),
        .testTarget(
            name: "BottleKitTests",
            dependencies: ["BottleKit"],
            path: "swift/Tests/BottleKitTests"
        ),
    ] + appTargets
)
