package examples_test

import (
	"encoding/json"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/config"
)

// deployment is one maruta container as a deployment file describes it,
// reduced to what must agree with the config it runs.
type deployment struct {
	where      string            // for messages
	configName string            // the config file it runs
	configData []byte            // its content
	env        map[string]string // the container's environment (image + deployment; secrets faked)
	args       []string          // arguments after the image's entrypoint
	mounts     map[string]mount  // by container path
	ports      []port
	healthCmd  []string // exec-form health check, or nil
	probes     []probe  // HTTP probes (Kubernetes)
	grace      time.Duration
	// hostPorts: the Forward port must be reachable on the host at the
	// same number (Docker's daemon or pods on the node connect there).
	hostPorts bool
	// persistentData: data_dir must be on storage that outlives the
	// container (a host path or a named volume).
	persistentData bool
}

type mount struct {
	volume     string
	persistent bool
	readOnly   bool
}

type port struct {
	container, host int // host 0: not published on the host
	proto           string
}

type probe struct {
	kind, path string
	port       int
}

// checkedDeployment is a deployment whose config loaded with the
// deployment's own environment.
type checkedDeployment struct {
	*deployment
	cfg        *config.Config
	configPath string // the -c argument
}

// hostPort returns the port numbers of s.
func hostPortOf(t testing.TB, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, addr, err)
	}
	return n
}

// mountFor returns the mount that holds file, the longest matching prefix.
func (d *deployment) mountFor(file string) (string, mount, bool) {
	best := ""
	for p := range d.mounts {
		if (file == p || strings.HasPrefix(file, strings.TrimSuffix(p, "/")+"/")) && len(p) > len(best) {
			best = p
		}
	}
	m, ok := d.mounts[best]
	return best, m, ok
}

func (d *deployment) hasPort(container int, proto string) (port, bool) {
	for _, p := range d.ports {
		if p.container == container && strings.EqualFold(p.proto, proto) {
			return p, true
		}
	}
	return port{}, false
}

// tlsFiles lists the files a config reads for TLS.
func tlsFiles(cfg *config.Config) []string {
	var files []string
	add := func(t *config.TLS) {
		if t == nil {
			return
		}
		for _, f := range []string{t.CertFile, t.KeyFile, t.CAFile} {
			if f != "" {
				files = append(files, f)
			}
		}
	}
	for _, s := range cfg.Sources {
		add(s.TLS)
	}
	for _, o := range cfg.LeafOutputs() {
		if o.Forward != nil {
			add(o.Forward.TLS)
		}
	}
	return files
}

// check verifies what every maruta deployment must get right and returns
// the config loaded with the deployment's environment.
func (d *deployment) check(t *testing.T, img dockerImage) *checkedDeployment {
	t.Helper()
	if len(d.args) == 0 || d.args[0] != "run" {
		t.Fatalf("%s: command %q, want [run] (and the config in $MARUTA_CONFIG)", d.where, d.args)
	}
	cd := &checkedDeployment{deployment: d, configPath: configPathOf(d.args, d.env)}
	if !path.IsAbs(cd.configPath) {
		t.Fatalf("%s: config %q (command %q, MARUTA_CONFIG %q), want an absolute path", d.where, cd.configPath, d.args, d.env["MARUTA_CONFIG"])
	}
	if _, _, ok := d.mountFor(cd.configPath); !ok {
		t.Errorf("%s: -c %s is not on a mounted volume", d.where, cd.configPath)
	}
	// The config must load with exactly the environment the container has:
	// a ${VAR} the deployment does not set stops maruta at start.
	cfg, err := validateConfig(d.configName, d.configData, d.env)
	if err != nil {
		t.Fatalf("%s runs %s: %v", d.where, d.configName, err)
	}
	cd.cfg = cfg

	dataDir := path.Clean(cfg.DataDir)
	if m, ok := d.mounts[dataDir]; !ok {
		t.Errorf("%s: data_dir %s (from %s) is not a mount point; mounts: %v", d.where, dataDir, d.configName, keys(d.mounts))
	} else {
		if m.readOnly {
			t.Errorf("%s: data_dir %s is mounted read-only", d.where, dataDir)
		}
		if d.persistentData && !m.persistent {
			t.Errorf("%s: data_dir %s is on volume %s, which does not outlive the container", d.where, dataDir, m.volume)
		}
	}

	for i, s := range cfg.Sources {
		if strings.HasPrefix(s.Listen, "unix://") {
			continue
		}
		lp := hostPortOf(t, fmt.Sprintf("%s sources[%d].listen", d.configName, i), s.Listen)
		protos := []string{"tcp"}
		if *s.Heartbeat {
			protos = append(protos, "udp")
		}
		for _, proto := range protos {
			p, ok := d.hasPort(lp, proto)
			if !ok {
				t.Errorf("%s: no %s port mapping for container port %d (sources[%d].listen %s of %s)", d.where, proto, lp, i, s.Listen, d.configName)
				continue
			}
			if d.hostPorts && p.host != lp {
				t.Errorf("%s: %s port %d is published on host port %d, want the same number", d.where, proto, lp, p.host)
			}
		}
	}
	for _, p := range d.ports {
		if !slices.Contains(img.exposed, fmt.Sprintf("%d/%s", p.container, strings.ToLower(p.proto))) {
			t.Errorf("%s: container port %d/%s is not EXPOSEd by the Dockerfile (%v)", d.where, p.container, p.proto, img.exposed)
		}
	}

	if cfg.HTTP.Listen == "off" {
		t.Fatalf("%s: http.listen is off: no health checks, no metrics", d.configName)
	}
	httpPort := hostPortOf(t, d.configName+" http.listen", cfg.HTTP.Listen)
	if _, ok := d.hasPort(httpPort, "tcp"); !ok {
		t.Errorf("%s: no tcp port mapping for http.listen port %d", d.where, httpPort)
	}
	if d.healthCmd != nil {
		d.checkHealthCmd(t, img, cd, httpPort)
	}
	for _, p := range d.probes {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[p.kind]
		if p.path != want {
			t.Errorf("%s: %s probe path %s, want %s", d.where, p.kind, p.path, want)
		}
		if p.port != httpPort {
			t.Errorf("%s: %s probe port %d, want http.listen's %d", d.where, p.kind, p.port, httpPort)
		}
	}
	if d.healthCmd == nil && len(d.probes) == 0 {
		t.Errorf("%s: no health check", d.where)
	}

	if min := cfg.ShutdownTimeout.D() + 10*time.Second; d.grace < min {
		t.Errorf("%s: grace period %s before SIGKILL; shutdown_timeout of %s is %s, so it must be at least %s",
			d.where, d.grace, d.configName, cfg.ShutdownTimeout.D(), min)
	}
	for _, f := range tlsFiles(cfg) {
		if _, _, ok := d.mountFor(f); !ok {
			t.Errorf("%s: TLS file %s of %s is not on a mounted volume", d.where, f, d.configName)
		}
	}
	return cd
}

// checkHealthCmd checks an exec-form health check: the image's binary,
// `healthcheck`, and the address it probes (worked out the way
// `maruta healthcheck` does) on http.listen's port.
func (d *deployment) checkHealthCmd(t *testing.T, img dockerImage, cd *checkedDeployment, httpPort int) {
	t.Helper()
	c := d.healthCmd
	if len(c) < 3 || c[0] != "CMD" || c[1] != img.entrypoint[0] || c[2] != "healthcheck" {
		t.Errorf("%s: health check %q, want [CMD %s healthcheck ...]", d.where, c, img.entrypoint[0])
		return
	}
	addr, file := "", ""
	for i := 3; i < len(c); i++ {
		switch c[i] {
		case "-addr", "--addr":
			if i+1 < len(c) {
				addr = c[i+1]
				i++
			}
		case "-c":
			if i+1 < len(c) {
				file = c[i+1]
				i++
			}
		}
	}
	if file == "" {
		file = d.env["MARUTA_CONFIG"]
	}
	switch {
	case addr != "":
	case file != "":
		if file != cd.configPath {
			t.Errorf("%s: health check reads %s, maruta runs %s", d.where, file, cd.configPath)
		}
		addr = cd.cfg.HTTP.Listen
	case d.env["MARUTA_HTTP_LISTEN"] != "":
		addr = d.env["MARUTA_HTTP_LISTEN"]
	default:
		addr = config.DefaultHTTPListen
	}
	if p := hostPortOf(t, d.where+" health check address", addr); p != httpPort {
		t.Errorf("%s: `maruta healthcheck` probes port %d (%s), http.listen is on %d", d.where, p, addr, httpPort)
	}
}

// configPathOf is the config file `maruta run` reads with args and env:
// -c FILE, else $MARUTA_CONFIG.
func configPathOf(args []string, env map[string]string) string {
	for i, a := range args {
		if (a == "-c" || a == "--c" || a == "-config" || a == "--config") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return env["MARUTA_CONFIG"]
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ---- ECS ----

type ecsTaskDef struct {
	Family                  string
	NetworkMode             string
	RequiresCompatibilities []string
	TaskRoleArn             string
	ExecutionRoleArn        string
	Volumes                 []struct {
		Name string
		Host *struct{ SourcePath string }
	}
	ContainerDefinitions []ecsContainer
}

type ecsContainer struct {
	Name        string
	Image       string
	Essential   *bool
	User        string
	EntryPoint  []string
	Command     []string
	Environment []struct{ Name, Value string }
	Secrets     []struct{ Name, ValueFrom string }
	MountPoints []struct {
		SourceVolume, ContainerPath string
		ReadOnly                    bool
	}
	PortMappings []struct {
		ContainerPort, HostPort int
		Protocol                string
	}
	HealthCheck      *struct{ Command []string }
	StopTimeout      int
	DependsOn        []struct{ ContainerName, Condition string }
	LogConfiguration *struct {
		LogDriver string
		Options   map[string]string
	}
}

func readTaskDef(t testing.TB, file string) *ecsTaskDef {
	t.Helper()
	var td ecsTaskDef
	if err := json.Unmarshal(readFile(t, file), &td); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &td
}

func (td *ecsTaskDef) container(t testing.TB, name string) *ecsContainer {
	t.Helper()
	for i := range td.ContainerDefinitions {
		if td.ContainerDefinitions[i].Name == name {
			return &td.ContainerDefinitions[i]
		}
	}
	t.Fatalf("task definition %s has no container %s", td.Family, name)
	return nil
}

// ecsDeployment describes container name of the task definition file,
// which runs configFile.
func ecsDeployment(t testing.TB, img dockerImage, file string, td *ecsTaskDef, name, configFile string) *deployment {
	t.Helper()
	c := td.container(t, name)
	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
	}
	for _, s := range c.Secrets {
		env[s.Name] = "fake-secret-" + strings.ToLower(s.Name)
	}
	vols := map[string]bool{}
	for _, v := range td.Volumes {
		vols[v.Name] = v.Host != nil && v.Host.SourcePath != ""
	}
	d := &deployment{
		where:      file + " container " + name,
		configName: configFile,
		configData: readFile(t, configFile),
		env:        img.withEnv(env),
		args:       c.Command,
		mounts:     map[string]mount{},
		grace:      30 * time.Second, // ECS's default stopTimeout
	}
	if len(c.EntryPoint) > 0 {
		t.Errorf("%s: entryPoint overrides the image's %q", d.where, img.entrypoint)
	}
	for _, mp := range c.MountPoints {
		persistent, ok := vols[mp.SourceVolume]
		if !ok {
			t.Errorf("%s: mount of undeclared volume %s", d.where, mp.SourceVolume)
		}
		d.mounts[path.Clean(mp.ContainerPath)] = mount{volume: mp.SourceVolume, persistent: persistent, readOnly: mp.ReadOnly}
	}
	for _, p := range c.PortMappings {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		host := p.HostPort
		if td.NetworkMode == "host" || td.NetworkMode == "awsvpc" {
			if host != 0 && host != p.ContainerPort {
				t.Errorf("%s: network mode %s needs hostPort = containerPort (%d != %d)", d.where, td.NetworkMode, host, p.ContainerPort)
			}
			host = p.ContainerPort
		}
		d.ports = append(d.ports, port{container: p.ContainerPort, host: host, proto: proto})
	}
	if c.HealthCheck != nil {
		d.healthCmd = c.HealthCheck.Command
	}
	if c.StopTimeout > 0 {
		d.grace = time.Duration(c.StopTimeout) * time.Second
	}
	if c.LogConfiguration == nil || c.LogConfiguration.LogDriver == "fluentd" {
		t.Errorf("%s: maruta's own logs need a log driver other than fluentd (it would log to itself)", d.where)
	}
	if c.Essential != nil && !*c.Essential {
		t.Errorf("%s: maruta must be essential", d.where)
	}
	return d
}

// checkECSConfigContainer checks the non-essential container that writes
// the config and TLS files from secrets before maruta starts, and owns the
// data folder for the image's user.
func checkECSConfigContainer(t *testing.T, img dockerImage, file string, td *ecsTaskDef, cd *checkedDeployment, name string) {
	t.Helper()
	m := td.container(t, name)
	var init *ecsContainer
	for _, dep := range m.DependsOn {
		c := td.container(t, dep.ContainerName)
		if dep.Condition == "SUCCESS" {
			init = c
		}
	}
	if init == nil {
		t.Fatalf("%s: maruta does not wait (dependsOn SUCCESS) for a container that writes its config", file)
	}
	if init.Essential == nil || *init.Essential {
		t.Errorf("%s: container %s exits after writing the files: it must not be essential", file, init.Name)
	}
	script := strings.Join(append(slices.Clone(init.EntryPoint), init.Command...), " ")
	initMounts := map[string]string{}
	for _, mp := range init.MountPoints {
		initMounts[path.Clean(mp.ContainerPath)] = mp.SourceVolume
	}
	secrets := map[string]bool{}
	for _, s := range init.Secrets {
		secrets[s.Name] = true
	}
	for _, f := range append([]string{cd.configPath}, tlsFiles(cd.cfg)...) {
		if !strings.Contains(script, "> "+f) {
			t.Errorf("%s: container %s does not write %s (its command: %s)", file, init.Name, f, script)
		}
		mp, mm, ok := cd.mountFor(f)
		if !ok {
			continue
		}
		if initMounts[mp] != mm.volume {
			t.Errorf("%s: %s is on volume %s at %s in maruta but not in %s", file, f, mm.volume, mp, init.Name)
		}
	}
	for _, ref := range regexpAll(`"\$([A-Z_][A-Z0-9_]*)"`, script) {
		if !secrets[ref] {
			t.Errorf("%s: container %s writes $%s, which is not among its secrets", file, init.Name, ref)
		}
	}
	dataDir := path.Clean(cd.cfg.DataDir)
	owner := img.uid + ":" + img.gid
	if !strings.Contains(script, "chown") || !strings.Contains(script, owner) || !strings.Contains(script, dataDir) {
		t.Errorf("%s: container %s must chown %s %s (the image's USER) so maruta can write it: %s", file, init.Name, owner, dataDir, script)
	}
	if v := initMounts[dataDir]; v != cd.mounts[dataDir].volume {
		t.Errorf("%s: container %s mounts %q at %s, maruta mounts %q", file, init.Name, v, dataDir, cd.mounts[dataDir].volume)
	}
}

func regexpAll(expr, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// ecsSetup loads the agent and aggregator task definitions and their
// configs, as checked deployments.
type ecsSetup struct {
	img                   dockerImage
	agentTD, aggregatorTD *ecsTaskDef
	agent, aggregator     *checkedDeployment
}

func loadECS(t *testing.T) *ecsSetup {
	t.Helper()
	s := &ecsSetup{img: readDockerfile(t)}
	s.agentTD = readTaskDef(t, "ecs/agent-task.json")
	d := ecsDeployment(t, s.img, "ecs/agent-task.json", s.agentTD, "maruta", "agent.yaml")
	d.hostPorts, d.persistentData = true, true
	s.agent = d.check(t, s.img)
	s.aggregatorTD = readTaskDef(t, "ecs/aggregator-task.json")
	d = ecsDeployment(t, s.img, "ecs/aggregator-task.json", s.aggregatorTD, "maruta", "aggregator.yaml")
	s.aggregator = d.check(t, s.img)
	return s
}

func TestECSAgentTask(t *testing.T) {
	s := loadECS(t)
	td := s.agentTD
	if td.NetworkMode != "host" && td.NetworkMode != "bridge" {
		t.Errorf("agent network mode %s: Docker's daemon reaches the agent through a host port (host or bridge)", td.NetworkMode)
	}
	if !slices.Contains(td.RequiresCompatibilities, "EC2") {
		t.Errorf("the agent is a daemon on EC2 container instances: requiresCompatibilities %v", td.RequiresCompatibilities)
	}
	if td.TaskRoleArn == "" {
		t.Errorf("agent: set a task role (without permissions) so the container does not fall back to the instance role")
	}
	for _, o := range s.agent.cfg.LeafOutputs() {
		if o.S3 != nil {
			t.Errorf("agent.yaml output %s writes to S3; the agent's task role has no permissions", o.Name)
		}
	}
	checkECSConfigContainer(t, s.img, "ecs/agent-task.json", td, s.agent, "maruta")
}

func TestECSAggregatorTask(t *testing.T) {
	s := loadECS(t)
	td := s.aggregatorTD
	if td.NetworkMode != "awsvpc" {
		t.Errorf("aggregator network mode %s, want awsvpc (load balancer target type ip)", td.NetworkMode)
	}
	if slices.Contains(td.RequiresCompatibilities, "FARGATE") && s.aggregator.grace > 120*time.Second {
		t.Errorf("Fargate allows stopTimeout up to 120 s, not %s", s.aggregator.grace)
	}
	if td.TaskRoleArn == "" {
		t.Errorf("aggregator: no task role; it writes to S3")
	}
	checkECSConfigContainer(t, s.img, "ecs/aggregator-task.json", td, s.aggregator, "maruta")
}

// TestECSAppTask checks the application's fluentd log driver options
// against the agent: address, port, ack and async.
func TestECSAppTask(t *testing.T) {
	s := loadECS(t)
	td := readTaskDef(t, "ecs/app-task.json")
	if slices.Contains(td.RequiresCompatibilities, "FARGATE") {
		t.Errorf("the fluentd log driver is not available on Fargate")
	}
	fwd := s.agent.cfg.Sources[0]
	agentPort := hostPortOf(t, "agent.yaml sources[0].listen", fwd.Listen)
	p, ok := s.agent.hasPort(agentPort, "tcp")
	if !ok {
		t.Fatalf("agent publishes no tcp port %d", agentPort)
	}
	n := 0
	for _, c := range td.ContainerDefinitions {
		lc := c.LogConfiguration
		if lc == nil || lc.LogDriver != "fluentd" {
			t.Errorf("ecs/app-task.json container %s: log driver is not fluentd", c.Name)
			continue
		}
		n++
		where := "ecs/app-task.json container " + c.Name
		addr := lc.Options["fluentd-address"]
		host, portNum := dockerFluentdAddress(t, where, addr)
		if host != "127.0.0.1" && host != "localhost" {
			t.Errorf("%s: fluentd-address %s: Docker's daemon sends to the agent on its own host (127.0.0.1)", where, addr)
		}
		if portNum != p.host {
			t.Errorf("%s: fluentd-address port %d, the agent listens on host port %d (agent.yaml %s)", where, portNum, p.host, fwd.Listen)
		}
		for _, opt := range []string{"fluentd-async", "fluentd-request-ack"} {
			if lc.Options[opt] != "true" {
				t.Errorf("%s: %s=%q, want \"true\"", where, opt, lc.Options[opt])
			}
		}
		if lc.Options["tag"] == "" {
			t.Errorf("%s: no tag", where)
		}
	}
	if n == 0 {
		t.Fatal("ecs/app-task.json: no container logs with fluentd")
	}
}

// dockerFluentdAddress parses Docker's fluentd-address option.
func dockerFluentdAddress(t testing.TB, where, addr string) (string, int) {
	t.Helper()
	a := strings.TrimPrefix(addr, "tcp://")
	if strings.HasPrefix(a, "unix://") || a == "" {
		t.Fatalf("%s: fluentd-address %q: want tcp://HOST:PORT", where, addr)
	}
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatalf("%s: fluentd-address %q: %v", where, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: fluentd-address %q: %v", where, addr, err)
	}
	return host, n
}

// cfnTemplate is the part of ecs/nlb.json the test reads.
type cfnTemplate struct {
	Resources map[string]struct {
		Type       string
		Properties map[string]any
	}
}

func TestECSLoadBalancer(t *testing.T) {
	s := loadECS(t)
	var tpl cfnTemplate
	if err := json.Unmarshal(readFile(t, "ecs/nlb.json"), &tpl); err != nil {
		t.Fatal(err)
	}
	byType := map[string][]map[string]any{}
	for _, r := range tpl.Resources {
		byType[r.Type] = append(byType[r.Type], r.Properties)
	}
	one := func(typ string) map[string]any {
		if len(byType[typ]) != 1 {
			t.Fatalf("ecs/nlb.json: want one %s, have %d", typ, len(byType[typ]))
		}
		return byType[typ][0]
	}
	num := func(v any) int {
		switch x := v.(type) {
		case float64:
			return int(x)
		case string:
			n, _ := strconv.Atoi(x)
			return n
		}
		return -1
	}
	lb := one("AWS::ElasticLoadBalancingV2::LoadBalancer")
	if lb["Type"] != "network" {
		t.Errorf("load balancer type %v, want network (TCP)", lb["Type"])
	}
	aggListen := hostPortOf(t, "aggregator.yaml sources[0].listen", s.aggregator.cfg.Sources[0].Listen)
	aggHTTP := hostPortOf(t, "aggregator.yaml http.listen", s.aggregator.cfg.HTTP.Listen)

	// Agents send to the listener: the port of their forward output.
	var agentPort int
	for _, o := range s.agent.cfg.LeafOutputs() {
		if o.Forward != nil {
			agentPort = o.Forward.Servers[0].Port
		}
	}
	ln := one("AWS::ElasticLoadBalancingV2::Listener")
	if ln["Protocol"] != "TCP" || num(ln["Port"]) != agentPort {
		t.Errorf("listener %v/%v; the agents (agent.yaml with ecs/agent-task.json's environment) send to TCP port %d", ln["Protocol"], ln["Port"], agentPort)
	}
	tg := one("AWS::ElasticLoadBalancingV2::TargetGroup")
	if tg["Protocol"] != "TCP" || num(tg["Port"]) != aggListen || tg["TargetType"] != "ip" {
		t.Errorf("target group %v/%v type %v; aggregators listen on TCP %d (awsvpc: type ip)", tg["Protocol"], tg["Port"], tg["TargetType"], aggListen)
	}
	switch hc := tg["HealthCheckProtocol"]; hc {
	case "TCP":
		if p := tg["HealthCheckPort"]; p != nil && p != "traffic-port" && num(p) != aggListen {
			t.Errorf("TCP health check on port %v, want the traffic port %d", p, aggListen)
		}
	case "HTTP":
		if num(tg["HealthCheckPort"]) != aggHTTP || (tg["HealthCheckPath"] != "/readyz" && tg["HealthCheckPath"] != "/healthz") {
			t.Errorf("HTTP health check %v%v, want port %d /readyz", tg["HealthCheckPort"], tg["HealthCheckPath"], aggHTTP)
		}
	default:
		t.Errorf("health check protocol %v, want TCP or HTTP", hc)
	}
	svc := one("AWS::ECS::Service")
	lbs, _ := svc["LoadBalancers"].([]any)
	if len(lbs) != 1 {
		t.Fatalf("service load balancers: %v", svc["LoadBalancers"])
	}
	l, _ := lbs[0].(map[string]any)
	if l["ContainerName"] != "maruta" || num(l["ContainerPort"]) != aggListen {
		t.Errorf("service registers %v:%v, want container maruta port %d", l["ContainerName"], l["ContainerPort"], aggListen)
	}
	if lt, _ := svc["LaunchType"].(string); lt != "" && !slices.Contains(s.aggregatorTD.RequiresCompatibilities, lt) {
		t.Errorf("service launch type %s, task definition requires %v", lt, s.aggregatorTD.RequiresCompatibilities)
	}
	sg := one("AWS::EC2::SecurityGroup")
	open := map[int]bool{}
	rules, _ := sg["SecurityGroupIngress"].([]any)
	for _, r := range rules {
		m, _ := r.(map[string]any)
		if m["IpProtocol"] == "tcp" {
			for p := num(m["FromPort"]); p <= num(m["ToPort"]); p++ {
				open[p] = true
			}
		}
	}
	for _, p := range []int{aggListen, aggHTTP} {
		if !open[p] {
			t.Errorf("the aggregators' security group does not open tcp %d", p)
		}
	}
}

// ---- Kubernetes ----

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	// Kustomization
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
}

type k8sPodSpec struct {
	ServiceAccountName            string         `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Containers                    []k8sContainer `yaml:"containers"`
	Volumes                       []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name  string `yaml:"name"`
			Items []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"configMap"`
		HostPath *struct {
			Path string `yaml:"path"`
		} `yaml:"hostPath"`
		EmptyDir any `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		HostPort      int    `yaml:"hostPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	SecurityContext *struct {
		RunAsUser *int `yaml:"runAsUser"`
	} `yaml:"securityContext"`
}

func TestKubernetes(t *testing.T) { loadKubernetes(t) }

// kubernetesSetup is the Kubernetes example, checked.
type kubernetesSetup struct {
	objects map[string]*k8sObject // by kind/name
	maruta  *checkedDeployment
}

func loadKubernetes(t *testing.T) *kubernetesSetup {
	t.Helper()
	img := readDockerfile(t)
	objects := map[string]*k8sObject{} // kind/name
	var kustomization *k8sObject
	var files []string
	for _, f := range exampleFiles(t) {
		if !strings.HasPrefix(f, "kubernetes/") {
			continue
		}
		for _, o := range decodeYAMLDocs[k8sObject](t, f, readFile(t, f)) {
			if o.Kind == "Kustomization" {
				kustomization = &o
				continue
			}
			files = append(files, path.Base(f))
			if o.Metadata.Name == "" {
				t.Errorf("%s: %s without a name", f, o.Kind)
			}
			objects[o.Kind+"/"+o.Metadata.Name] = &o
		}
	}
	if kustomization == nil {
		t.Fatal("kubernetes/: no kustomization.yaml")
	}
	slices.Sort(files)
	files = slices.Compact(files)
	res := slices.Sorted(slices.Values(kustomization.Resources))
	if !slices.Equal(res, files) {
		t.Errorf("kustomization resources %v, files %v", res, files)
	}
	for k, o := range objects {
		if o.Kind != "Namespace" && o.Metadata.Namespace != kustomization.Namespace {
			t.Errorf("%s: namespace %q, kustomization's %q", k, o.Metadata.Namespace, kustomization.Namespace)
		}
	}
	if objects["Namespace/"+kustomization.Namespace] == nil {
		t.Errorf("no Namespace %s", kustomization.Namespace)
	}
	var ds *k8sObject
	for _, o := range objects {
		if o.Kind == "DaemonSet" {
			ds = o
		}
	}
	if ds == nil {
		t.Fatal("kubernetes/: no DaemonSet")
	}
	pod := ds.Spec.Template.Spec
	where := "kubernetes DaemonSet " + ds.Metadata.Name
	var c *k8sContainer
	for i := range pod.Containers {
		if pod.Containers[i].Name == "maruta" {
			c = &pod.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("%s: no container maruta", where)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command overrides the image's entrypoint %q; use args", where, img.entrypoint)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "fake-" + strings.ToLower(strings.ReplaceAll(e.Name, "_", "-"))
		} else {
			env[e.Name] = e.Value
		}
	}
	sa := objects["ServiceAccount/"+pod.ServiceAccountName]
	if sa == nil {
		t.Errorf("%s: service account %q is not defined", where, pod.ServiceAccountName)
	} else if !strings.HasPrefix(sa.Metadata.Annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::") {
		t.Errorf("ServiceAccount %s: no IRSA annotation eks.amazonaws.com/role-arn", sa.Metadata.Name)
	}

	d := &deployment{
		where:          where,
		env:            img.withEnv(env),
		args:           c.Args,
		mounts:         map[string]mount{},
		hostPorts:      true,
		persistentData: true,
		grace:          30 * time.Second,
	}
	if pod.TerminationGracePeriodSeconds != nil {
		d.grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	configPath := configPathOf(c.Args, d.env)
	for _, vm := range c.VolumeMounts {
		mp := path.Clean(vm.MountPath)
		found := false
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			found = true
			d.mounts[mp] = mount{volume: v.Name, persistent: v.HostPath != nil, readOnly: vm.ReadOnly}
			if v.HostPath != nil && path.Clean(v.HostPath.Path) == "" {
				t.Errorf("%s: hostPath without a path", where)
			}
			if v.ConfigMap == nil || !strings.HasPrefix(configPath, mp+"/") {
				continue
			}
			cm := objects["ConfigMap/"+v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("%s: volume %s names ConfigMap %s, which is not defined", where, v.Name, v.ConfigMap.Name)
			}
			file := strings.TrimPrefix(configPath, mp+"/")
			key := file
			for _, it := range v.ConfigMap.Items {
				if it.Path == file {
					key = it.Key
				}
			}
			data, ok := cm.Data[key]
			if !ok {
				t.Fatalf("%s: -c %s: ConfigMap %s has no key %s (keys %v)", where, configPath, cm.Metadata.Name, key, keys(cm.Data))
			}
			d.configName = "kubernetes/configmap.yaml#" + key
			d.configData = []byte(data)
		}
		if !found {
			t.Errorf("%s: volume mount %s of an undeclared volume", where, vm.Name)
		}
	}
	if d.configData == nil {
		t.Fatalf("%s: -c %q is not a file of a mounted ConfigMap", where, configPath)
	}
	named := map[string]int{}
	for _, p := range c.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		d.ports = append(d.ports, port{container: p.ContainerPort, host: p.HostPort, proto: proto})
		if p.Name != "" {
			named[p.Name] = p.ContainerPort
		}
	}
	addProbe := func(kind string, pr *k8sProbe) {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", where, kind)
			return
		}
		n := -1
		switch v := pr.HTTPGet.Port.(type) {
		case string:
			var ok bool
			if n, ok = named[v]; !ok {
				t.Errorf("%s: %s probe port %q names no container port", where, kind, v)
			}
		case uint64:
			n = int(v)
		case int64:
			n = int(v)
		case int:
			n = v
		}
		d.probes = append(d.probes, probe{kind: kind, path: pr.HTTPGet.Path, port: n})
	}
	addProbe("liveness", c.LivenessProbe)
	addProbe("readiness", c.ReadinessProbe)
	cd := d.check(t, img)

	dataDir := path.Clean(cd.cfg.DataDir)
	if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil || strconv.Itoa(*c.SecurityContext.RunAsUser) != img.uid {
		t.Errorf("%s: runAsUser must be the image's user %s", where, img.uid)
	}
	chowned := false
	for _, ic := range pod.InitContainers {
		script := strings.Join(append(slices.Clone(ic.Command), ic.Args...), " ")
		mounted := false
		for _, vm := range ic.VolumeMounts {
			if path.Clean(vm.MountPath) == dataDir && vm.Name == cd.mounts[dataDir].volume {
				mounted = true
			}
		}
		if mounted && strings.Contains(script, "chown") && strings.Contains(script, img.uid+":"+img.gid) && strings.Contains(script, dataDir) {
			chowned = true
		}
	}
	if !chowned {
		t.Errorf("%s: hostPath folders are created root-owned: an init container must chown %s:%s %s", where, img.uid, img.gid, dataDir)
	}
	// A pod's host name changes when the pod is replaced; object keys and
	// chunk ids need a name that stays: the node's.
	nodeVar := ""
	for _, e := range c.Env {
		vf, _ := e.ValueFrom.(map[string]any)
		if fr, _ := vf["fieldRef"].(map[string]any); fr["fieldPath"] == "spec.nodeName" {
			nodeVar = e.Name
		}
	}
	if nodeVar == "" || cd.cfg.Node != d.env[nodeVar] {
		t.Errorf("%s: node is %q; it must come from the Kubernetes node name (an env var from fieldRef spec.nodeName)", d.configName, cd.cfg.Node)
	}
	return &kubernetesSetup{objects: objects, maruta: cd}
}

// ---- docker compose ----

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	DependsOn       any    `yaml:"depends_on"`
	Logging         *struct {
		Driver  string            `yaml:"driver"`
		Options map[string]string `yaml:"options"`
	} `yaml:"logging"`
}

// composePort parses "[IP:]HOST:CONTAINER[/PROTO]".
func composePort(t testing.TB, s string) port {
	t.Helper()
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	parts := strings.Split(spec, ":")
	if len(parts) < 2 {
		t.Fatalf("compose port %q: publish it on the host (HOST:CONTAINER)", s)
	}
	h, err1 := strconv.Atoi(parts[len(parts)-2])
	c, err2 := strconv.Atoi(parts[len(parts)-1])
	if err1 != nil || err2 != nil {
		t.Fatalf("compose port %q: not HOST:CONTAINER numbers", s)
	}
	return port{container: c, host: h, proto: proto}
}

// dependsOn returns the condition of a depends_on entry ("" for the list form).
func dependsOn(v any, name string) (string, bool) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if e == name {
				return "service_started", true
			}
		}
	case map[string]any:
		if e, ok := x[name]; ok {
			m, _ := e.(map[string]any)
			c, _ := m["condition"].(string)
			return c, true
		}
	}
	return "", false
}

// composeSetup is the compose example, checked.
type composeSetup struct {
	cf     composeFile
	name   string // of maruta's service
	svc    composeService
	maruta *checkedDeployment
}

const composeFileName = "compose/docker-compose.yaml"

func loadCompose(t *testing.T) *composeSetup {
	t.Helper()
	img := readDockerfile(t)
	const file = composeFileName
	docs := decodeYAMLDocs[composeFile](t, file, readFile(t, file))
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents", file, len(docs))
	}
	cf := docs[0]
	var marutaName string
	for name, s := range cf.Services {
		if s.Build != nil {
			marutaName = name
		}
	}
	m, ok := cf.Services[marutaName]
	if !ok {
		t.Fatalf("%s: no service built from the repository's Dockerfile", file)
	}
	where := file + " service " + marutaName
	if path.Clean(path.Join("compose", m.Build.Context)) != ".." || (m.Build.Dockerfile != "" && m.Build.Dockerfile != "Dockerfile") {
		t.Errorf("%s: build %s/%s is not the repository's Dockerfile", where, m.Build.Context, m.Build.Dockerfile)
	}
	if len(m.Entrypoint) > 0 {
		t.Errorf("%s: entrypoint overrides the image's", where)
	}
	d := &deployment{
		where:          where,
		env:            img.withEnv(m.Environment),
		args:           m.Command,
		mounts:         map[string]mount{},
		persistentData: true,
		grace:          10 * time.Second, // compose's default
	}
	if m.StopGracePeriod != "" {
		g, err := time.ParseDuration(m.StopGracePeriod)
		if err != nil {
			t.Fatalf("%s: stop_grace_period: %v", where, err)
		}
		d.grace = g
	}
	configPath := configPathOf(m.Command, d.env)
	for _, v := range m.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("%s: volume %q: anonymous volumes are lost with the container", where, v)
			continue
		}
		src, dst := parts[0], path.Clean(parts[1])
		ro := len(parts) > 2 && strings.Contains(parts[2], "ro")
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			d.mounts[dst] = mount{volume: src, persistent: true, readOnly: ro}
			if dst == configPath {
				d.configName = path.Join("compose", src)
				d.configData = readFile(t, d.configName)
			}
			continue
		}
		if _, ok := cf.Volumes[src]; !ok {
			t.Errorf("%s: named volume %s is not declared", where, src)
		}
		d.mounts[dst] = mount{volume: src, persistent: true, readOnly: ro}
	}
	if d.configData == nil {
		t.Fatalf("%s: -c %q is not a bind-mounted file", where, configPath)
	}
	for _, p := range m.Ports {
		d.ports = append(d.ports, composePort(t, p))
	}
	if m.Healthcheck != nil {
		d.healthCmd = m.Healthcheck.Test
	}
	cd := d.check(t, img)
	return &composeSetup{cf: cf, name: marutaName, svc: m, maruta: cd}
}

func TestCompose(t *testing.T) {
	cs := loadCompose(t)
	const file = composeFileName
	cf, marutaName, m, cd := cs.cf, cs.name, cs.svc, cs.maruta
	d, where := cd.deployment, cd.where

	// The app logs through Docker's daemon to the published port.
	fwdPort := hostPortOf(t, d.configName+" sources[0].listen", cd.cfg.Sources[0].Listen)
	published, _ := cd.hasPort(fwdPort, "tcp")
	apps := 0
	for name, s := range cf.Services {
		if s.Logging == nil || s.Logging.Driver != "fluentd" {
			continue
		}
		apps++
		w := file + " service " + name
		host, p := dockerFluentdAddress(t, w, s.Logging.Options["fluentd-address"])
		if host != "localhost" && host != "127.0.0.1" {
			t.Errorf("%s: fluentd-address host %s: Docker's daemon connects, from the host", w, host)
		}
		if p != published.host {
			t.Errorf("%s: fluentd-address port %d, maruta's Forward port %d is published on host port %d", w, p, fwdPort, published.host)
		}
		for _, opt := range []string{"fluentd-async", "fluentd-request-ack"} {
			if s.Logging.Options[opt] != "true" {
				t.Errorf("%s: %s=%q, want \"true\"", w, opt, s.Logging.Options[opt])
			}
		}
		if c, _ := dependsOn(s.DependsOn, marutaName); c != "service_healthy" {
			t.Errorf("%s: depends_on %s condition %q, want service_healthy", w, marutaName, c)
		}
	}
	if apps == 0 {
		t.Errorf("%s: no service logs with the fluentd driver", file)
	}

	// The S3 server, the bucket one-shot and maruta agree on endpoint,
	// credentials, region and bucket.
	var s3out *config.S3Output
	for _, o := range cd.cfg.LeafOutputs() {
		if o.S3 != nil {
			s3out = o.S3
		}
	}
	if s3out == nil {
		t.Fatalf("%s: no s3 output", d.configName)
	}
	if s3out.ForcePathStyle == nil || !*s3out.ForcePathStyle {
		t.Errorf("%s: an S3-compatible server by service name needs force_path_style", d.configName)
	}
	ep := strings.TrimPrefix(strings.TrimPrefix(s3out.Endpoint, "http://"), "https://")
	epHost, epPort, err := net.SplitHostPort(ep)
	if err != nil {
		t.Fatalf("%s: endpoint %q: %v", d.configName, s3out.Endpoint, err)
	}
	s3svc, ok := cf.Services[epHost]
	if !ok {
		t.Fatalf("%s: endpoint %s: no service %s", d.configName, s3out.Endpoint, epHost)
	}
	flag := func(args []string, name string) string {
		for i, a := range args {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	if p := flag(s3svc.Command, "--port"); !strings.HasSuffix(p, ":"+epPort) {
		t.Errorf("service %s listens on %q, maruta's endpoint is %s", epHost, p, s3out.Endpoint)
	}
	access, secret := flag(s3svc.Command, "--access"), flag(s3svc.Command, "--secret")
	region := flag(s3svc.Command, "--region")
	if access == "" || secret == "" {
		t.Fatalf("service %s: no --access/--secret", epHost)
	}
	check := func(who string, env map[string]string) {
		if env["AWS_ACCESS_KEY_ID"] != access || env["AWS_SECRET_ACCESS_KEY"] != secret {
			t.Errorf("%s: credentials %s/%s, the S3 server's are %s/%s", who, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], access, secret)
		}
		if region != "" && env["AWS_REGION"] != region {
			t.Errorf("%s: AWS_REGION %q, the S3 server's region %q", who, env["AWS_REGION"], region)
		}
	}
	check(where, m.Environment)
	if region != "" && s3out.Region != "" && s3out.Region != region {
		t.Errorf("%s: region %s, the S3 server's %s", d.configName, s3out.Region, region)
	}
	makers := 0
	for name, s := range cf.Services {
		script := strings.Join(append(slices.Clone(s.Entrypoint), s.Command...), " ")
		if !strings.Contains(script, "create-bucket") && !strings.Contains(script, " mb ") {
			continue
		}
		makers++
		check(file+" service "+name, s.Environment)
		if !strings.Contains(script, "--bucket "+s3out.Bucket) && !strings.Contains(script, "s3://"+s3out.Bucket) {
			t.Errorf("service %s does not create bucket %s: %s", name, s3out.Bucket, script)
		}
		if ep := s.Environment["AWS_ENDPOINT_URL"]; ep != s3out.Endpoint {
			t.Errorf("service %s uses endpoint %q, maruta %q", name, ep, s3out.Endpoint)
		}
		if c, ok := dependsOn(m.DependsOn, name); !ok || c != "service_completed_successfully" {
			t.Errorf("%s: must wait for %s (service_completed_successfully), has %q", where, name, c)
		}
	}
	if makers != 1 {
		t.Errorf("%s: want one service that creates the bucket, have %d", file, makers)
	}
}

// ---- IAM ----

type iamPolicy struct {
	Statement []struct {
		Effect    string
		Action    any
		Resource  any
		Principal any
		Condition map[string]map[string]any
	}
}

func readPolicy(t testing.TB, file string) *iamPolicy {
	t.Helper()
	var p iamPolicy
	if err := json.Unmarshal(readFile(t, file), &p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(p.Statement) == 0 {
		t.Fatalf("%s: no statements", file)
	}
	return &p
}

// allows reports whether the policy allows action on resource.
func (p *iamPolicy) allows(action, resource string) bool {
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			continue
		}
		actOK, resOK := false, false
		for _, a := range stringList(s.Action) {
			if iamMatch(strings.ToLower(a), strings.ToLower(action)) {
				actOK = true
			}
		}
		for _, r := range stringList(s.Resource) {
			if iamMatch(r, resource) {
				resOK = true
			}
		}
		if actOK && resOK {
			return true
		}
	}
	return false
}

// leastPrivilege rejects wildcard actions and resources.
func (p *iamPolicy) leastPrivilege(t *testing.T, file string) {
	t.Helper()
	for i, s := range p.Statement {
		for _, a := range stringList(s.Action) {
			if strings.Contains(a, "*") {
				t.Errorf("%s: statement %d: action %s: name actions one by one", file, i, a)
			}
		}
		for _, r := range stringList(s.Resource) {
			if r == "*" || strings.HasSuffix(r, ":::*") {
				t.Errorf("%s: statement %d: resource %s", file, i, r)
			}
		}
	}
}

// constPrefix is the part of a path template before its first placeholder
// or strftime directive.
func constPrefix(tmpl string) string {
	if i := strings.IndexAny(tmpl, "$%"); i >= 0 {
		return tmpl[:i]
	}
	return tmpl
}

// checkS3Policy checks that policy lets cfg's S3 outputs upload (PutObject,
// multipart abort), confirm a refused conditional put (HeadObject needs
// s3:GetObject) and use their KMS key.
func checkS3Policy(t *testing.T, file string, p *iamPolicy, cfg *config.Config, cfgName string) {
	t.Helper()
	p.leastPrivilege(t, file)
	n := 0
	for _, o := range cfg.LeafOutputs() {
		if o.S3 == nil {
			continue
		}
		n++
		obj := "arn:aws:s3:::" + o.S3.Bucket + "/" + constPrefix(o.S3.Path) + "x/dt=2026-11-22/hour=13/node-chunk.parquet"
		for _, a := range []string{"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"} {
			if !p.allows(a, obj) {
				t.Errorf("%s does not allow %s on %s (output %s of %s)", file, a, obj, o.Name, cfgName)
			}
		}
		if o.S3.ServerSideEncryption == "aws:kms" && strings.HasPrefix(o.S3.SSEKMSKeyID, "arn:aws:kms:") {
			for _, a := range []string{"kms:GenerateDataKey", "kms:Decrypt"} {
				if !p.allows(a, o.S3.SSEKMSKeyID) {
					t.Errorf("%s does not allow %s on %s (output %s of %s)", file, a, o.S3.SSEKMSKeyID, o.Name, cfgName)
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("%s has no s3 output for %s to cover", cfgName, file)
	}
	// Nothing beyond the outputs' prefixes.
	for _, s := range p.Statement {
		for _, r := range stringList(s.Resource) {
			if !strings.HasPrefix(r, "arn:aws:s3:::") {
				continue
			}
			covered := false
			for _, o := range cfg.LeafOutputs() {
				if o.S3 != nil && iamMatch(r, "arn:aws:s3:::"+o.S3.Bucket+"/"+constPrefix(o.S3.Path)+"x") {
					covered = true
				}
			}
			if !covered {
				t.Errorf("%s: resource %s is no output's prefix in %s", file, r, cfgName)
			}
		}
	}
}

func TestIAMPolicies(t *testing.T) {
	s := loadECS(t)
	checkS3Policy(t, "iam/aggregator-task-role-policy.json", readPolicy(t, "iam/aggregator-task-role-policy.json"), s.aggregator.cfg, "aggregator.yaml")

	// The execution role reads every secret the task definitions name.
	exec := readPolicy(t, "iam/ecs-execution-role-policy.json")
	exec.leastPrivilege(t, "iam/ecs-execution-role-policy.json")
	for _, f := range []string{"ecs/agent-task.json", "ecs/aggregator-task.json"} {
		td := readTaskDef(t, f)
		if !strings.HasSuffix(td.ExecutionRoleArn, "/maruta-ecs-execution") {
			t.Errorf("%s: execution role %s is not the one iam/ecs-execution-role-policy.json is for", f, td.ExecutionRoleArn)
		}
		for _, c := range td.ContainerDefinitions {
			for _, sec := range c.Secrets {
				action := "ssm:GetParameters"
				if strings.HasPrefix(sec.ValueFrom, "arn:aws:secretsmanager:") {
					action = "secretsmanager:GetSecretValue"
				}
				if !exec.allows(action, sec.ValueFrom) {
					t.Errorf("%s container %s: the execution role may not %s %s", f, c.Name, action, sec.ValueFrom)
				}
			}
		}
	}

	// Kubernetes: the IRSA role writes the DaemonSet's lake, and trusts its
	// service account.
	k := loadKubernetes(t)
	k8sCfg := k.maruta.cfg
	var ns, sa string
	for _, o := range k.objects {
		if o.Kind == "ServiceAccount" {
			ns, sa = o.Metadata.Namespace, o.Metadata.Name
		}
	}
	checkS3Policy(t, "iam/kubernetes-irsa-role-policy.json", readPolicy(t, "iam/kubernetes-irsa-role-policy.json"), k8sCfg, "kubernetes/configmap.yaml")
	trust := readPolicy(t, "iam/kubernetes-irsa-trust-policy.json")
	want := "system:serviceaccount:" + ns + ":" + sa
	found := false
	for _, st := range trust.Statement {
		for _, cond := range st.Condition {
			for k, v := range cond {
				if strings.HasSuffix(k, ":sub") && slices.Contains(stringList(v), want) {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("iam/kubernetes-irsa-trust-policy.json does not trust %s", want)
	}
	ecsTrust := readPolicy(t, "iam/ecs-tasks-trust-policy.json")
	if p, _ := ecsTrust.Statement[0].Principal.(map[string]any); p["Service"] != "ecs-tasks.amazonaws.com" {
		t.Errorf("iam/ecs-tasks-trust-policy.json: principal %v", ecsTrust.Statement[0].Principal)
	}
}
