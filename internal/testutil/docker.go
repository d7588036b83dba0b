package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"testing"
)

// Docker is a Docker daemon (dockerd of Debian's docker.io) started in a
// temporary folder for the tests of one test binary: its own data root,
// exec root, pid file and unix socket, no iptables, no bridge, the vfs
// storage driver, so several daemons can run on one machine at once. The
// first call to StartDocker starts it; every later call in the same binary
// returns the same daemon; StopDocker (from TestMain, after m.Run) stops it
// and removes the folder.
//
// Containers reach the host's loopback (the fluentd log driver connects from
// the daemon, not from the container), so they run with --network none.
type Docker struct {
	// Host is the daemon's address, for DOCKER_HOST (unix://…/d.sock).
	Host string
	// Image is a busybox image imported from a local root file system
	// (no registry): busybox-static as /bin/busybox with the applets sh,
	// seq, printf, head, cat, sleep, tr, yes linked beside it.
	Image string

	dir  string
	cli  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	dockerMu  sync.Mutex
	dockerD   *Docker
	dockerErr error
)

// StartDocker returns the test binary's Docker daemon, starting it on the
// first call. When dockerd, docker or busybox is missing or the daemon does
// not start, the test is skipped, or fails with Docker's own error when
// MARUTA_REQUIRE_TOOLS=1.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	dockerMu.Lock()
	defer dockerMu.Unlock()
	if dockerD == nil && dockerErr == nil {
		dockerD, dockerErr = startDocker()
	}
	if dockerErr != nil {
		msg := "docker: " + dockerErr.Error()
		if os.Getenv("MARUTA_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dockerD
}

// StopDocker stops the daemon StartDocker started, if any: it removes
// every container left, stops dockerd (and the containerd it runs),
// unmounts what they left mounted in the folder and removes the folder.
// Safe to call when no daemon was started, and twice.
func StopDocker() {
	dockerMu.Lock()
	defer dockerMu.Unlock()
	if dockerD != nil {
		dockerD.stop()
	}
	dockerD, dockerErr = nil, nil
}

func startDocker() (*Docker, error) {
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, errors.New("dockerd is not installed (apt-get install docker.io; `make tools` does it)")
	}
	// The client of the same package, so it speaks the daemon's API version.
	cli := filepath.Join(filepath.Dir(filepath.Dir(dockerd)), "bin", "docker")
	if _, err := os.Stat(cli); err != nil {
		if cli, err = exec.LookPath("docker"); err != nil {
			return nil, errors.New("the docker client is not installed (apt-get install docker.io)")
		}
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, errors.New("busybox is not installed (apt-get install busybox-static)")
	}
	// Unix socket paths are limited to 107 bytes: keep the folder short
	// (containerd puts its sockets under the exec root).
	base := ""
	if len(os.TempDir()) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "mdk")
	if err != nil {
		return nil, err
	}
	d := &Docker{
		Host:  "unix://" + filepath.Join(dir, "d.sock"),
		Image: "maruta-test-busybox",
		dir:   dir,
		cli:   cli,
		log:   filepath.Join(dir, "dockerd.log"),
		done:  make(chan struct{}),
	}
	logf, err := os.Create(d.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.cmd = exec.Command(dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs", "--data-root", filepath.Join(dir, "r"), "--exec-root", filepath.Join(dir, "x"),
		"--pidfile", filepath.Join(dir, "d.pid"), "--host", d.Host)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.done:
			err := fmt.Errorf("dockerd exited: %s", d.tail(20))
			d.stop()
			return nil, err
		default:
		}
		if _, err := d.cmdOutput(nil, "version", "--format", "{{.Server.Version}}"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("dockerd did not answer within 60s: %s", d.tail(20))
			d.stop()
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.importImage(busybox); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// importImage builds the busybox root file system and imports it.
func (d *Docker) importImage(busybox string) error {
	root := filepath.Join(d.dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		return err
	}
	for _, sub := range []string{"etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "seq", "printf", "head", "cat", "sleep", "tr", "yes", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return err
		}
	}
	tar := exec.Command("tar", "-C", root, "-c", ".")
	var tarOut bytes.Buffer
	tar.Stdout = &tarOut
	if err := tar.Run(); err != nil {
		return fmt.Errorf("tar the image root: %w", err)
	}
	if _, err := d.cmdOutput(&tarOut, "import", "-", d.Image); err != nil {
		return fmt.Errorf("import the busybox image: %w", err)
	}
	return os.RemoveAll(root)
}

// Command returns the docker client command with args, talking to this
// daemon.
func (d *Docker) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs the docker client with args (bounded by 2 minutes) and returns
// its standard output, failing the test with the client's error output and
// the end of the daemon's log.
func (d *Docker) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.cmdOutput(nil, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\ndaemon log:\n%s", strings.Join(args, " "), err, d.tail(20))
	}
	return out
}

func (d *Docker) cmdOutput(stdin *bytes.Buffer, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := d.Command(ctx, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// LogOffset returns the current size of the daemon's log, to read what it
// logs from then on with LogSince.
func (d *Docker) LogOffset() int64 {
	fi, err := os.Stat(d.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns the daemon's log from offset on.
func (d *Docker) LogSince(offset int64) string {
	data, _ := os.ReadFile(d.log)
	if offset > int64(len(data)) {
		offset = 0
	}
	return string(data[offset:])
}

// tail returns the last n lines of the daemon's log.
func (d *Docker) tail(n int) string {
	lines := strings.Split(strings.TrimRight(d.LogSince(0), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *Docker) stop() {
	select {
	case <-d.done:
	default:
		if ids, err := d.cmdOutput(nil, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			d.cmdOutput(nil, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	}
	unmountUnder(d.dir)
	os.RemoveAll(d.dir)
}

// unmountUnder detaches every mount point below dir, deepest first (what
// containerd and the vfs driver may leave behind after a kill).
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := strings.ReplaceAll(f[4], `\040`, " ")
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
