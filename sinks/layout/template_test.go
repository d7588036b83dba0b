package layout

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marutalog/maruta/internal/delivery"
)

func TestTagResolver(t *testing.T) {
	for _, c := range []struct {
		tmpl, tag, want string
	}{
		{"${tag}/dt=%Y-%m-%d/hour=%H/", "docker.shop", "docker.shop/dt=%Y-%m-%d/hour=%H/"},
		{"logs/shop-event/${tag_parts[2]}/%Y/%m/%d/%H/", "shop.event.order_placed", "logs/shop-event/order_placed/%Y/%m/%d/%H/"},
		{"a/${tag_parts[-1]}/${tag_parts[0]}/", "x.y.z", "a/z/x/"},
		{"a/${tag_parts[5]}/", "x.y", "a/_/"},                 // missing part: "_", never an empty folder
		{"${tag}/", "../../etc", "______etc/"},                // no '/' or '..' from values
		{"${tag}/", "a/b\x00c%Yd${e}f=g", "a_b_c_Yd__e_f_g/"}, // no strftime or placeholders injected either
		{"${tag}/", "\xff\xfe日本", "__日本/"},
		{"100%%/${tag}/${host_key}/%Q", "t", "100%%/t/${host_key}/%%Q"}, // literal % stays escaped for the sink
		{"static/path/", "t", "static/path/"},
	} {
		if got := TagResolver(c.tmpl)(c.tag); got != c.want {
			t.Errorf("TagResolver(%q)(%q) = %q, want %q", c.tmpl, c.tag, got, c.want)
		}
	}
}

func TestTagResolverConcurrentAndCacheBound(t *testing.T) {
	r := TagResolver("${tag_parts[1]}/${tag}/")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ { // more tags than the cache holds
				tag := fmt.Sprintf("a.b%d", i%5000)
				if got, want := r(tag), fmt.Sprintf("b%d/%s/", i%5000, tag); got != want {
					t.Errorf("%s: %q, want %q", tag, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestKeyRenderDeterministic(t *testing.T) {
	path := "logs/${tag_parts[1]}/dt=%Y-%m-%d/hour=%H/${region}/"
	kt, err := NewKeys(path, "${path}${node}-${chunk_id}.${ext}", "web-1", []string{"region"})
	if err != nil {
		t.Fatal(err)
	}
	info := delivery.ChunkInfo{
		ID: "0abc9z", Tag: "app.api", Path: TagResolver(path)("app.api"),
		Slice: time.Date(2026, 1, 2, 3, 0, 0, 0, time.FixedZone("JST", 9*3600)), // rendered in UTC
		Keys:  map[string]string{"region": "eu/west"},
	}
	want := "logs/api/dt=2026-01-01/hour=18/eu_west/web-1-0abc9z.parquet"
	for i := 0; i < 3; i++ {
		got, err := kt.Render(info, "parquet")
		if err != nil || got != want {
			t.Fatalf("render = %q, %v; want %q", got, err, want)
		}
	}
	// Without a slice the creation time is used; a chunk without Path uses
	// the output's template.
	info.Slice, info.Created, info.Path = time.Time{}, time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), ""
	if got, _ := kt.Render(info, "jsonl.gz"); got != "logs/api/dt=2026-05-06/hour=07/eu_west/web-1-0abc9z.jsonl.gz" {
		t.Errorf("render = %q", got)
	}
}

func TestKeyTemplateErrors(t *testing.T) {
	for _, c := range []struct{ path, key, want string }{
		{"${tag}/", "${path}${node}.${ext}", "must contain ${chunk_id}"},
		{"${tag}/${nope}/", "${path}${chunk_id}", "unknown placeholder ${nope}"},
		{"${tag}/", "${path}${chunk_id}-${what}", "unknown placeholder ${what}"},
	} {
		_, err := NewKeys(c.path, c.key, "n", nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewKeys(%q, %q) = %v, want %q", c.path, c.key, err, c.want)
		}
	}
}

func TestSanitizeValue(t *testing.T) {
	for in, want := range map[string]string{
		"":          "_",
		"plain-1.x": "plain-1.x",
		"..":        "__",
		"a...b":     "a__.b",
		"a/b\\c":    "a_b_c",
		"tab\there": "tab_here",
		"ünï":       "ünï",
	} {
		if got := SanitizeValue(in); got != want {
			t.Errorf("SanitizeValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkTagResolver(b *testing.B) {
	r := TagResolver("${tag}/dt=%Y-%m-%d/hour=%H/")
	tags := []string{"docker.shop", "docker.api", "docker.web"}
	i := 0
	for b.Loop() {
		r(tags[i%3])
		i++
	}
}
