// The commands' shared support lives in StrataCLI (StrataBench uses it too). Exported here so that
// every command file sees it without importing it.
@_exported import StrataCLI
