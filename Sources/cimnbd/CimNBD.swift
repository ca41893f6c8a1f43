import ArgumentParser

@main
struct CimNBD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cimnbd",
        abstract: "Serve Windows CIM images as read-only Linux volumes over NBD."
    )
}
