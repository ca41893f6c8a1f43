import ArgumentParser

@main
struct CimNBD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cimnbd",
        abstract: "Serve Windows CIM images as read-only Linux volumes over NBD.",
        discussion: """
            cimnbd reads Windows container-layer images (CimFS: NAME.cim plus region_* and \
            objectid_* files), synthesizes a read-only ext4 volume from them on the fly, and \
            exports it over the NBD protocol under the image's volume GUID.

            Start here: cimnbd serve (serves a demo image), then cimnbd mount DIR NAME.cim.
            """,
        subcommands: [CimCommand.self, ImageCommand.self, ExportCommand.self, ServeCommand.self, MountCommand.self, DismountCommand.self, ListCommand.self,
                      AttachCommand.self, DetachCommand.self, StatusCommand.self, ReconnectCommand.self]
    )
}

/// `cimnbd cim …`: inspect, create and extract CIM images.
struct CimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cim",
        abstract: "Inspect, create and extract CIM images.",
        subcommands: [CimListCommand.self, CimStatCommand.self, CimCatCommand.self, CimVerifyCommand.self, CimCreateCommand.self, CimExtractCommand.self,
                      CimImportLayerCommand.self, CimImportMSIXCommand.self]
    )
}
