package examples_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marutalog/maruta/internal/config"
	"github.com/marutalog/maruta/internal/testutil"
)

// TestHealthcheckFindsTheConfig runs the maruta of every deployment
// example the way the deployment starts it — its arguments and environment,
// the image's included — on a copy of its config whose http.listen moved to
// another port, then the deployment's health check command in the same
// environment (as ECS and Docker run it inside the container; for
// Kubernetes, what `kubectl exec … maruta healthcheck` and the image's
// HEALTHCHECK run). The check must find maruta on the moved port: it reads
// the config run reads. The image's default address ($MARUTA_HTTP_LISTEN)
// points at a port with nothing on it, so a check that falls back to it
// fails. A second run with the config passed only as `run -c FILE` (the
// wiring the examples had) shows the check is not vacuous.
func TestHealthcheckFindsTheConfig(t *testing.T) {
	ecs := loadECS(t)
	for _, cd := range []*checkedDeployment{ecs.agent, ecs.aggregator, loadCompose(t).maruta, loadKubernetes(t).maruta} {
		t.Run(strings.ReplaceAll(cd.where, "/", "_"), func(t *testing.T) {
			if code, out := runHealthcheck(t, cd, cd.args, cd.env); code != 0 || out != "ok\n" {
				t.Errorf("health check: exit %d, %q; want exit 0, ok", code, out)
			}
			old := map[string]string{}
			for k, v := range cd.env {
				if k != "MARUTA_CONFIG" {
					old[k] = v
				}
			}
			if code, out := runHealthcheck(t, cd, []string{"run", "-c", cd.configPath}, old); code == 0 {
				t.Errorf("with the config given only to run (-c), the health check still passed (%q): the test proves nothing", out)
			}
		})
	}
}

// runHealthcheck starts maruta with args and env on a copy of cd's config
// under a temporary root (container paths mapped into it), waits until it
// serves /healthz on the copy's port, runs the health check and returns
// its exit code and output.
func runHealthcheck(t *testing.T, cd *checkedDeployment, args []string, env map[string]string) (int, string) {
	t.Helper()
	root := t.TempDir()
	host := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Join(root, p)
		}
		return p
	}
	httpAddr, nobody := freePort(t), freePort(t)
	// The copy: http.listen moved; what cannot run here (TLS files, the
	// network outputs, fixed ports) replaced by a plain Forward listener on
	// a free port and a null output; data under the root.
	c := *cd.cfg
	c.HTTP.Listen = httpAddr
	c.DataDir = host(cd.cfg.DataDir)
	c.Sources = []config.Source{{Type: "forward", Listen: "127.0.0.1:0"}}
	c.Outputs = []config.Output{{OutputCommon: config.OutputCommon{Type: "null", Name: "out"}, Null: &config.NullOutput{}}}
	data, err := config.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	file := host(cd.configPath)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	procEnv := map[string]string{}
	for k, v := range env {
		procEnv[k] = v
		if strings.HasPrefix(v, "/") && (k == "MARUTA_CONFIG" || k == "MARUTA_DATA_DIR") {
			procEnv[k] = host(v)
		}
	}
	procEnv["MARUTA_HTTP_LISTEN"] = nobody // the image's default address: nothing there
	procEnv["MARUTA_LISTEN"] = "127.0.0.1:0"
	mapped := make([]string, len(args))
	for i, a := range args {
		mapped[i] = a
		if a == cd.configPath {
			mapped[i] = file
		}
	}

	cmd := exec.Command(marutaBin, mapped...)
	cmd.Env, cmd.Dir = cleanEnv(procEnv), root
	defer testutil.StartHealthy(t, cmd, httpAddr).Stop()

	check := []string{"healthcheck"} // the image's HEALTHCHECK
	if len(cd.healthCmd) > 2 {
		check = append([]string(nil), cd.healthCmd[2:]...)
	}
	for i, a := range check {
		if a == cd.configPath {
			check[i] = file
		}
	}
	hc := exec.Command(marutaBin, check...)
	hc.Env, hc.Dir = cleanEnv(procEnv), root
	out, _ := hc.CombinedOutput()
	return hc.ProcessState.ExitCode(), string(out)
}

// freePort returns a loopback address with a port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
