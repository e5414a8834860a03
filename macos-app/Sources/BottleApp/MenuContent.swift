// The menu-bar window: one row per bottle, with its state, allowlist badge,
// Start/Stop, and pending approvals. Everything shown comes from AppModel.

import AppKit
import BottleKit
import SwiftUI

struct MenuContent: View {
    let model: AppModel
    @Environment(\.openWindow) private var openWindow

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            if model.bottles.isEmpty {
                Text("No bottles").foregroundStyle(.secondary)
            }
            ForEach(model.bottles) { row in
                BottleRowView(model: model, row: row)
                Divider()
            }
            if let error = model.lastError {
                Text(error).font(.caption).foregroundStyle(.red).lineLimit(4)
            }
            HStack {
                Button("Start…") { chooseAndStart() }
                Button("Doctor") { openWindow(id: "doctor") }
                Spacer()
                Button("Quit") { NSApplication.shared.terminate(nil) }
            }
        }
        .padding(12)
        .frame(width: 360)
    }

    /// Asks for a bottle.toml and starts it.
    private func chooseAndStart() {
        let panel = NSOpenPanel()
        panel.allowedContentTypes = [.init(filenameExtension: "toml")!]
        panel.canChooseDirectories = false
        guard panel.runModal() == .OK, let url = panel.url else { return }
        Task { await model.start(specPath: url.path) }
    }
}

struct BottleRowView: View {
    let model: AppModel
    let row: AppModel.Row
    @State private var showDetail = false
    @Environment(\.openWindow) private var openWindow

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            HStack {
                Text(row.info.name).bold()
                Text(row.info.state).foregroundStyle(.secondary)
                Spacer()
                AllowlistBadge(verdict: row.info.allowlist.verdict)
                    .onTapGesture { showDetail.toggle() }
                    .popover(isPresented: $showDetail) { AllowlistDetail(allowlist: row.info.allowlist) }
            }
            HStack {
                Button("Stop") { Task { await model.stop(row.info.name) } }
                Button("Open Logs") { openWindow(id: "logs", value: row.info.name) }
            }
            ForEach(row.pending, id: \.id) { request in
                HStack {
                    Text(request.host + (request.port.map { ":\($0)" } ?? "")).font(.callout)
                    Text(request.reason).font(.caption).foregroundStyle(.secondary).lineLimit(1)
                    Spacer()
                    Button("Approve") { Task { await model.approve(row.info.name, request) } }
                    Button("Deny") { Task { await model.deny(row.info.name, request) } }
                }
            }
        }
    }
}

struct AllowlistBadge: View {
    let verdict: AllowlistVerdict

    var body: some View {
        switch verdict {
        case .verified: Label("verified", systemImage: "checkmark.shield").foregroundStyle(.green)
        case .failed: Label("failed", systemImage: "xmark.shield").foregroundStyle(.red)
        case .notVerified: Label("not verified", systemImage: "questionmark.diamond").foregroundStyle(.orange)
        }
    }
}

struct AllowlistDetail: View {
    let allowlist: AllowlistInfo

    var body: some View {
        VStack(alignment: .leading, spacing: 6) {
            AllowlistBadge(verdict: allowlist.verdict)
            Text(allowlist.detail).font(.caption)
            Text("Checked: \(allowlist.checkedAt ?? "never")").font(.caption)
            Text("Mechanism: \(allowlist.mechanism)").font(.caption)
            if let vmm = allowlist.vmm {
                Text("VMM: \(vmm.runtime) \(vmm.version), network \(vmm.netBackend)").font(.caption)
            }
            Divider()
            Text("Allowed destinations").bold()
            ForEach(allowlist.allowlist, id: \.self) { Text($0).font(.system(.caption, design: .monospaced)) }
        }
        .padding()
        .frame(width: 320)
    }
}
