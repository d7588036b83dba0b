// Package config defines maruta's YAML configuration: typed structs decoded
// strictly (an unknown key is an error naming file, line and key), defaults
// set in one place (defaults.go), and Validate. Each step and output type is
// one entry in a table (kinds.go) whose struct has its own defaults and
// checks; each key that takes one of a few words has a type and constants
// (modes.go) that components compare with.
//
// The top level is fixed (README.md, "Configuration"): node, data_dir,
// http, sources, pipeline, outputs. Pipeline steps and outputs are tagged
// unions: the `type` key selects which struct the rest of the mapping is
// decoded into, so each type accepts exactly its own keys.
//
// ${VAR} and ${VAR:-default} are replaced from the environment before the
// YAML is parsed, for upper-case names only ([A-Z_][A-Z0-9_]*). Lower-case
// ${...} (${tag}, ${tag_parts[1]}, ${hostname}, ${chunk_id}, …) are
// placeholders that components resolve at run time. $${ is a literal ${.
//
// Imports nothing of the module (go-yaml is its only library), so every
// other package may import it. See ARCHITECTURE.md, "Where to add things",
// for what a new step or output type needs here.
package config
