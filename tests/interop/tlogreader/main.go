// Command tlogreader is an independent reader of a C2SP tlog-tiles log, built only on
// golang.org/x/mod/sumdb/note and sumdb/tlog (Debian's golang-golang-x-mod-dev): it
// fetches the checkpoint and verifies its signature, recomputes the root from every
// entry bundle, checks the hash tiles against the root (tlog.TileHashReader), and checks
// inclusion and consistency proofs assembled from the tiles. It shares no code with
// Clearpost. Exit status 0 means every check passed.
//
// Usage: tlogreader -url http://127.0.0.1:PORT/log -vkey VKEY [-old-size M -old-root B64]
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var client = &http.Client{Timeout: 30 * time.Second}

func fetch(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// c2spPath turns sumdb's tile path (which names the height: tile/8/L/N) into the C2SP
// tlog-tiles path (tile/L/N, and tile/entries/N for the data tiles).
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	return "tile/" + strings.Replace(p, "data/", "entries/", 1)
}

type tileReader struct {
	base    string
	fetched int
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := fetch(r.base + "/" + c2spPath(t))
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %d bytes, want %d", c2spPath(t), len(data), t.W*tlog.HashSize)
		}
		r.fetched++
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func decodeBundle(data []byte) ([][]byte, error) {
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, errors.New("truncated length")
		}
		n := int(data[0])<<8 | int(data[1])
		data = data[2:]
		if len(data) < n {
			return nil, errors.New("truncated entry")
		}
		entries = append(entries, data[:n])
		data = data[n:]
	}
	return entries, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	base := flag.String("url", "", "the log's tlog-tiles prefix, e.g. http://127.0.0.1:8448/log")
	vkey := flag.String("vkey", "", "the log's note verifier key")
	oldSize := flag.Int64("old-size", 0, "an earlier checkpoint's size, to check consistency from")
	oldRootB64 := flag.String("old-root", "", "that checkpoint's root hash (base64)")
	flag.Parse()

	// 1. The checkpoint, opened with sumdb/note.
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	raw, err := fetch(*base + "/checkpoint")
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint body: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 1 {
		fail("checkpoint size %q", lines[1])
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	// 2. Every entry bundle; the root recomputed from the entries with sumdb/tlog.
	var stored []tlog.Hash
	readStored := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	var leaves []tlog.Hash
	bundles := 0
	for start := int64(0); start < size; start += 256 {
		w := size - start
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}
		data, err := fetch(*base + "/" + c2spPath(t))
		if err != nil {
			fail("%v", err)
		}
		entries, err := decodeBundle(data)
		if err != nil || int64(len(entries)) != w {
			fail("bundle %s: %d entries (%v), want %d", c2spPath(t), len(entries), err, w)
		}
		bundles++
		for _, e := range entries {
			leaf := tlog.RecordHash(e)
			hashes, err := tlog.StoredHashesForRecordHash(int64(len(leaves)), leaf, readStored)
			if err != nil {
				fail("storing hashes: %v", err)
			}
			stored = append(stored, hashes...)
			leaves = append(leaves, leaf)
		}
	}
	fromEntries, err := tlog.TreeHash(size, readStored)
	if err != nil || fromEntries != root {
		fail("the entries hash to %v, the checkpoint says %v (%v)", fromEntries, root, err)
	}

	// 3. The hash tiles, checked against the signed root by sumdb's TileHashReader.
	tr := &tileReader{base: *base}
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tr)
	fromTiles, err := tlog.TreeHash(size, hr)
	if err != nil || fromTiles != root {
		fail("the tiles give root %v (%v)", fromTiles, err)
	}
	checked := 0
	for _, i := range []int64{0, size / 3, size / 2, size - 1} {
		p, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			fail("inclusion proof of %d from tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(p, size, root, i, leaves[i]); err != nil {
			fail("inclusion of %d: %v", i, err)
		}
		checked++
	}
	consistency := "none"
	if *oldSize > 0 {
		oldRootBytes, err := base64.StdEncoding.DecodeString(*oldRootB64)
		if err != nil || len(oldRootBytes) != tlog.HashSize {
			fail("old root %q", *oldRootB64)
		}
		var oldRoot tlog.Hash
		copy(oldRoot[:], oldRootBytes)
		p, err := tlog.ProveTree(size, *oldSize, hr)
		if err != nil {
			fail("consistency proof from tiles: %v", err)
		}
		if err := tlog.CheckTree(p, size, root, *oldSize, oldRoot); err != nil {
			fail("consistency %d -> %d: %v", *oldSize, size, err)
		}
		consistency = fmt.Sprintf("%d->%d", *oldSize, size)
	}
	fmt.Printf("OK origin=%s size=%d root=%s bundles=%d tiles=%d inclusion=%d consistency=%s\n",
		lines[0], size, lines[2], bundles, tr.fetched, checked, consistency)
}
