// The menu-bar window: bottles being started with their latest step, one row per
// bottle (state, allowlist badge, agent state, last event, kill switch, Events,
// Logs, Stop with a confirmation, pending approvals), the last error with its
// causes, and Start with the recent bottle.toml files. Everything shown comes from AppModel.

import AppKit
import BottleKit
import SwiftUI

struct MenuContent: View {
    let model: AppModel
    @Environment(\.openWindow) private var openWindow

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            if model.bottles.isEmpty && model.starting.isEmpty {
                Text("No bottles").foregroundStyle(.secondary)
            }
            ForEach(model.starting) { start in
                HStack {
                    ProgressView().controlSize(.small)
                    VStack(alignment: .leading) {
                        Text(URL(fileURLWithPath: start.specPath).deletingLastPathComponent().lastPathComponent).bold()
                        Text(start.step).font(.caption).foregroundStyle(.secondary).lineLimit(2)
                    }
                }
                Divider()
            }
            ForEach(model.bottles) { row in
                BottleRowView(model: model, row: row)
                Divider()
            }
            if let error = model.lastError {
                ErrorView(error: error)
            }
            HStack {
                Button("Start…") { chooseAndStart() }
                if !model.recentSpecs.isEmpty {
                    Menu("Recent") {
                        ForEach(model.recentSpecs, id: \.self) { path in
                            Button(path) { Task { await model.start(specPath: path) } }
                        }
                    }
                    .fixedSize()
                }
                Button("Doctor") { openWindow(id: "doctor") }
                SettingsLink { Text("Settings") }
                Spacer()
                Button("Quit") { NSApplication.shared.terminate(nil) }
            }
        }
        .padding(12)
        .frame(width: 380)
        .confirmationDialog(
            "Stop and remove \(model.stopCandidate ?? "")?",
            isPresented: Binding(get: { model.stopCandidate != nil }, set: { if !$0 { model.cancelStop() } })
        ) {
            Button("Stop and Remove", role: .destructive) { Task { await model.confirmStop() } }
            Button("Cancel", role: .cancel) { model.cancelStop() }
        } message: {
            Text("The bottle's containers and networks are removed. Its workspace stays.")
        }
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

/// Rust's sentence, with the cause chain behind a disclosure.
struct ErrorView: View {
    let error: ErrorReport

    var body: some View {
        VStack(alignment: .leading) {
            Text(error.message).font(.caption).foregroundStyle(.red).textSelection(.enabled)
            if error.chain.count > 1 {
                DisclosureGroup("Details") {
                    ForEach(Array(error.chain.enumerated()), id: \.offset) {
                        Text($0.element).font(.system(.caption2, design: .monospaced)).textSelection(.enabled)
                    }
                }
                .font(.caption)
            }
        }
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
                Text(bottleStateWord(state: row.info.state)).foregroundStyle(.secondary)
                Spacer()
                AllowlistBadge(verdict: row.info.allowlist.verdict)
                    .onTapGesture { showDetail.toggle() }
                    .popover(isPresented: $showDetail) { AllowlistDetail(allowlist: row.info.allowlist) }
            }
            if let control = row.control, let agent = control.agentState {
                Text(control.agentMessage.isEmpty ? "Agent: \(agent)" : "Agent: \(agent): \(control.agentMessage)")
                    .font(.caption).foregroundStyle(agent == .needsInput ? .orange : .secondary).lineLimit(2)
            }
            if let last = row.events.last {
                Text(last.line).font(.caption2).foregroundStyle(.secondary).lineLimit(1)
            }
            HStack {
                Toggle(
                    "Kill switch",
                    isOn: Binding(
                        get: { row.killSwitch },
                        set: { on in Task { await model.setKillSwitch(row.info.name, engaged: on) } })
                )
                .toggleStyle(.switch).controlSize(.mini)
                .help("Cuts all of the bottle's egress at once")
                Spacer()
                Button("Events") { openWindow(id: "events", value: row.info.name) }
                Button("Logs") { openWindow(id: "logs", value: row.info.name) }
                Button("Stop…") { model.requestStop(row.info.name) }
            }
            ForEach(row.pending, id: \.id) { request in
                HStack {
                    Text(request.host + (request.port.map { ":\($0)" } ?? "")).font(.callout)
                    Text(request.reason).font(.caption).foregroundStyle(.secondary).lineLimit(1)
                    Spacer()
                    Button("Approve") { Task { await model.approve(row.info.name, requestId: request.id) } }
                    Button("Deny") { Task { await model.deny(row.info.name, requestId: request.id) } }
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
