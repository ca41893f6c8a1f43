import CimFS

/// The identity of an export: the volume GUID, canonical lowercase text
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (the export name clients use; any
/// letter case and a pair of braces are accepted), bytes in the Windows `GUID`
/// layout CIM stores. One type with the CIM layer's, so no conversion can
/// disagree.
public typealias ExportGUID = CimGUID
