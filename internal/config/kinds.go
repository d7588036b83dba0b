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
	"parse": {func() stepBody { return new(ParseStep) },
		func(s *Step) stepBody { return nilStep(s.Parse) }, func(s *Step, b stepBody) { s.Parse = b.(*ParseStep) }},
	"rewrite_tag": {func() stepBody { return new(RewriteTagStep) },
		func(s *Step) stepBody { return nilStep(s.RewriteTag) }, func(s *Step, b stepBody) { s.RewriteTag = b.(*RewriteTagStep) }},
	"concat_partials": {func() stepBody { return new(ConcatPartialsStep) },
		func(s *Step) stepBody { return nilStep(s.ConcatPartials) }, func(s *Step, b stepBody) { s.ConcatPartials = b.(*ConcatPartialsStep) }},
	"record": {func() stepBody { return new(RecordStep) },
		func(s *Step) stepBody { return nilStep(s.Record) }, func(s *Step, b stepBody) { s.Record = b.(*RecordStep) }},
	"grep": {func() stepBody { return new(GrepStep) },
		func(s *Step) stepBody { return nilStep(s.Grep) }, func(s *Step, b stepBody) { s.Grep = b.(*GrepStep) }},
}

// nilStep returns b as a stepBody, or a nil interface for a nil pointer.
func nilStep[T stepBody](b T) stepBody {
	var zero T
	if any(b) == any(zero) {
		return nil
	}
	return b
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
func StepTypes() []string {
	names := make([]string, 0, len(stepKinds))
	for k := range stepKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

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
	"stdout": {func() outputBody { return new(StdoutOutput) },
		func(o *Output) outputBody { return nilIf(o.Stdout) }, func(o *Output, b outputBody) { o.Stdout = b.(*StdoutOutput) }},
	"null": {func() outputBody { return new(NullOutput) },
		func(o *Output) outputBody { return nilIf(o.Null) }, func(o *Output, b outputBody) { o.Null = b.(*NullOutput) }},
	"file": {func() outputBody { return new(FileOutput) },
		func(o *Output) outputBody { return nilIf(o.File) }, func(o *Output, b outputBody) { o.File = b.(*FileOutput) }},
	"s3": {func() outputBody { return new(S3Output) },
		func(o *Output) outputBody { return nilIf(o.S3) }, func(o *Output, b outputBody) { o.S3 = b.(*S3Output) }},
	"forward": {func() outputBody { return new(ForwardOutput) },
		func(o *Output) outputBody { return nilIf(o.Forward) }, func(o *Output, b outputBody) { o.Forward = b.(*ForwardOutput) }},
	"copy": {func() outputBody { return new(CopyOutput) },
		func(o *Output) outputBody { return nilIf(o.Copy) }, func(o *Output, b outputBody) { o.Copy = b.(*CopyOutput) }},
	"cloudwatch_logs": {func() outputBody { return new(CloudWatchLogsOutput) },
		func(o *Output) outputBody { return nilIf(o.CloudWatchLogs) }, func(o *Output, b outputBody) { o.CloudWatchLogs = b.(*CloudWatchLogsOutput) }},
	"syslog": {func() outputBody { return new(SyslogOutput) },
		func(o *Output) outputBody { return nilIf(o.Syslog) }, func(o *Output, b outputBody) { o.Syslog = b.(*SyslogOutput) }},
	"treasure_data": {func() outputBody { return new(TreasureDataOutput) },
		func(o *Output) outputBody { return nilIf(o.TreasureData) }, func(o *Output, b outputBody) { o.TreasureData = b.(*TreasureDataOutput) }},
}

// nilIf returns b as an outputBody, or a nil interface for a nil pointer.
func nilIf[T outputBody](b T) outputBody {
	var zero T
	if any(b) == any(zero) {
		return nil
	}
	return b
}

// OutputTypes returns the output types, sorted.
func OutputTypes() []string {
	names := make([]string, 0, len(outputKinds))
	for k := range outputKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
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
