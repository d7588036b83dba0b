package config

import "sort"

// stepBody is the typed struct of one pipeline step type. StepCommon
// gives every type the defaults (no defaults of its own, nothing to
// validate); a type overrides what it has.
type stepBody interface {
	common() *StepCommon
	setDefaults()
	// validate checks the type's keys; p is the step's key path.
	validate(v *validator, p string)
}

// stepKind is one step type: its struct and its field in Step.
type stepKind struct {
	new func() stepBody
	// get returns s's body when it is of this type, else nil.
	get func(s *Step) stepBody
	// set makes b s's body.
	set func(s *Step, b stepBody)
}

// stepKinds is the table of pipeline step types. Adding a type is: its
// struct with the stepBody methods it needs, its field in Step, one entry
// here, and its builder in the router.
var stepKinds = map[string]stepKind{
	"parse":           stepType(func(s *Step) **ParseStep { return &s.Parse }),
	"rewrite_tag":     stepType(func(s *Step) **RewriteTagStep { return &s.RewriteTag }),
	"concat_partials": stepType(func(s *Step) **ConcatPartialsStep { return &s.ConcatPartials }),
	"record":          stepType(func(s *Step) **RecordStep { return &s.Record }),
	"grep":            stepType(func(s *Step) **GrepStep { return &s.Grep }),
}

// stepType is the kind of the step struct E, held in the field of Step
// that field points at.
func stepType[E any, P interface {
	*E
	stepBody
}](field func(*Step) *P) stepKind {
	return stepKind{
		new: func() stepBody { return P(new(E)) },
		get: func(s *Step) stepBody {
			if p := *field(s); p != nil {
				return p
			}
			return nil
		},
		set: func(s *Step, b stepBody) { *field(s) = b.(P) },
	}
}

// body returns s's typed struct, or nil when none is set.
func (s *Step) body() stepBody {
	for _, k := range stepKinds {
		if b := k.get(s); b != nil {
			return b
		}
	}
	return nil
}

// StepTypes returns the pipeline step types, sorted.
func StepTypes() []string { return sortedKeys(stepKinds) }

func (c *StepCommon) common() *StepCommon       { return c }
func (*StepCommon) setDefaults()                {}
func (*StepCommon) validate(*validator, string) {}

// outputBody is the typed struct of one output type. OutputCommon gives
// every type the defaults (no defaults of its own, nothing to validate,
// unbuffered); a type overrides what it has.
type outputBody interface {
	common() *OutputCommon
	// setDefaults fills in the type's defaults; name is the output's name
	// (already set).
	setDefaults(c *Config, name string)
	// validate checks the type's keys; p is the output's key path.
	validate(v *validator, p string)
	// buffer is the output's buffer section, nil when unbuffered.
	buffer() *Buffer
	// chunkPath is the template the buffer keeps chunks apart by, "" for
	// none.
	chunkPath() string
	// encoding is the object encoding of file and s3, nil for others.
	encoding() *Encoding
}

// outputKind is one output type: its struct and its field in Output.
type outputKind struct {
	new func() outputBody
	// get returns o's body when it is of this type, else nil.
	get func(o *Output) outputBody
	// set makes b o's body.
	set func(o *Output, b outputBody)
}

// outputKinds is the table of output types. Adding a type is: its struct
// with the outputBody methods it needs (its own file), its field in
// Output, one entry here, and its builder in the sinks package's table.
var outputKinds = map[string]outputKind{
	"stdout":          outputType(func(o *Output) **StdoutOutput { return &o.Stdout }),
	"null":            outputType(func(o *Output) **NullOutput { return &o.Null }),
	"file":            outputType(func(o *Output) **FileOutput { return &o.File }),
	"s3":              outputType(func(o *Output) **S3Output { return &o.S3 }),
	"forward":         outputType(func(o *Output) **ForwardOutput { return &o.Forward }),
	"copy":            outputType(func(o *Output) **CopyOutput { return &o.Copy }),
	"cloudwatch_logs": outputType(func(o *Output) **CloudWatchLogsOutput { return &o.CloudWatchLogs }),
	"syslog":          outputType(func(o *Output) **SyslogOutput { return &o.Syslog }),
	"treasure_data":   outputType(func(o *Output) **TreasureDataOutput { return &o.TreasureData }),
}

// outputType is the kind of the output struct E, held in the field of
// Output that field points at.
func outputType[E any, P interface {
	*E
	outputBody
}](field func(*Output) *P) outputKind {
	return outputKind{
		new: func() outputBody { return P(new(E)) },
		get: func(o *Output) outputBody {
			if p := *field(o); p != nil {
				return p
			}
			return nil
		},
		set: func(o *Output, b outputBody) { *field(o) = b.(P) },
	}
}

// OutputTypes returns the output types, sorted.
func OutputTypes() []string { return sortedKeys(outputKinds) }

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// body returns o's typed struct, or nil when none is set.
func (o *Output) body() outputBody {
	for _, k := range outputKinds {
		if b := k.get(o); b != nil {
			return b
		}
	}
	return nil
}

// The defaults of OutputCommon, which every output type embeds.

func (c *OutputCommon) common() *OutputCommon     { return c }
func (*OutputCommon) setDefaults(*Config, string) {}
func (*OutputCommon) validate(*validator, string) {}
func (*OutputCommon) buffer() *Buffer             { return nil }
func (*OutputCommon) chunkPath() string           { return "" }
func (*OutputCommon) encoding() *Encoding         { return nil }

// What the buffered types have.

func (f *FileOutput) buffer() *Buffer           { return &f.Buffer }
func (f *FileOutput) chunkPath() string         { return f.Path }
func (f *FileOutput) encoding() *Encoding       { return &f.Encoding }
func (s *S3Output) buffer() *Buffer             { return &s.Buffer }
func (s *S3Output) chunkPath() string           { return s.Path }
func (s *S3Output) encoding() *Encoding         { return &s.Encoding }
func (f *ForwardOutput) buffer() *Buffer        { return &f.Buffer }
func (o *CloudWatchLogsOutput) buffer() *Buffer { return &o.Buffer }
func (o *SyslogOutput) buffer() *Buffer         { return &o.Buffer }
func (o *TreasureDataOutput) buffer() *Buffer   { return &o.Buffer }

// Not paths: one chunk per table or stream where the tag decides it.
func (o *TreasureDataOutput) chunkPath() string   { return o.Database + "." + o.Table }
func (o *CloudWatchLogsOutput) chunkPath() string { return o.LogGroupName + ":" + o.LogStreamName }

// NewOutput returns an output of type typ with its typed struct set and
// nothing else (no defaults), or false for an unknown type.
func NewOutput(typ string) (*Output, bool) {
	k, ok := outputKinds[typ]
	if !ok {
		return nil, false
	}
	o := &Output{OutputCommon: OutputCommon{Type: typ}}
	k.set(o, k.new())
	o.syncCommon()
	return o, true
}
