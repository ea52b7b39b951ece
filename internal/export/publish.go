package export

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/store"
)

// commitRun publishes the run and records it in res. The checkpoint enters the publishing phase
// first, so a publish that is interrupted is finished by the next run.
func (e *Exporter) commitRun(ctx context.Context, p Partition, cp *checkpoint, m *manifest.Manifest, res *Result) error {
	if cp.Phase == phaseWriting {
		cp.Phase = phasePublishing
		if err := e.saveCheckpoint(ctx, p, cp); err != nil {
			return err
		}
	}
	if err := e.publish(ctx, p, cp, m); err != nil {
		return err
	}
	res.Status, res.Manifest = StatusCommitted, e.ManifestName(p)
	return nil
}

// hold keeps the new export aside: its parts stay in the run folder with a held manifest, the
// live partition is untouched, and the checkpoint is cleared so the next run starts afresh.
func (e *Exporter) hold(ctx context.Context, p Partition, cp *checkpoint, m *manifest.Manifest, why string, res *Result) error {
	m.Status = manifest.StatusHeld
	dir := e.runDir(cp.RunID, p)
	for i := range m.Blobs {
		m.Blobs[i].BlobName = path.Join(dir, path.Base(m.Blobs[i].BlobName)) + stagedSuffix
	}
	name := path.Join(dir, manifest.FileName)
	if err := e.putManifest(ctx, name, m); err != nil {
		return err
	}
	if err := e.st.Delete(ctx, e.checkpointName(p)); err != nil {
		return fmt.Errorf("clearing checkpoint: %w", err)
	}
	zerolog.Ctx(ctx).Warn().Str("reason", why).Str("held_manifest", name).Msg("drop guard: re-export held back, previous export stays live")
	res.Status, res.Manifest = StatusHeld, name
	res.Error = "drop guard: " + why + "; previous export kept live, new export kept aside at " + name
	return nil
}

func (e *Exporter) putManifest(ctx context.Context, name string, m *manifest.Manifest) error {
	m.RunInfo.FinishedTime = e.opts.Now().UTC() // when the manifest is written, not when the run began
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	if _, err := e.st.Put(ctx, name, bytes.NewReader(b), &store.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("writing manifest %s: %w", name, err)
	}
	return nil
}

// publish moves the staged parts to their live names (each an atomic replace), deletes live
// parts the new run does not have, writes the manifest last, and clears the run's control
// state. Every step is idempotent, so an interrupted publish is finished by the next run.
func (e *Exporter) publish(ctx context.Context, p Partition, cp *checkpoint, m *manifest.Manifest) error {
	dir := e.Dir(p)
	keep := map[string]bool{}
	for _, b := range m.Blobs {
		keep[b.BlobName] = true
	}
	keys := make([]string, 0, len(cp.Parts))
	for k := range cp.Parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps := cp.Parts[k]
		live := path.Join(dir, partPrefix+k+cp.Ext)
		if ps.Rows == 0 {
			if err := e.st.Delete(ctx, ps.Staged); err != nil {
				return fmt.Errorf("removing empty part %s: %w", k, err)
			}
			continue
		}
		meta := map[string]string{"runid": cp.RunID, "rows": strconv.FormatInt(ps.Rows, 10), "sha256": ps.SHA256}
		if err := e.st.Move(ctx, ps.Staged, live, &store.PutOptions{Metadata: meta, ContentType: contentTypeOf(cp.Ext)}); err != nil {
			return fmt.Errorf("publishing part %s: %w", k, err)
		}
	}
	var stale []string
	err := e.st.List(ctx, dir+"/", func(it store.Item) error {
		base := path.Base(it.Name)
		if strings.HasPrefix(base, partPrefix) && !keep[it.Name] {
			stale = append(stale, it.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing live parts: %w", err)
	}
	for _, name := range stale {
		if err := e.st.Delete(ctx, name); err != nil {
			return fmt.Errorf("removing stale part %s: %w", name, err)
		}
	}
	if err := e.putManifest(ctx, e.ManifestName(p), m); err != nil {
		return err
	}
	if err := e.st.Delete(ctx, e.checkpointName(p)); err != nil {
		return fmt.Errorf("clearing checkpoint: %w", err)
	}
	e.deleteTree(ctx, e.runDir(cp.RunID, p)+"/")
	return nil
}

func contentTypeOf(ext string) string {
	if strings.HasSuffix(ext, ".gz") {
		return "application/gzip"
	}
	return "application/x-ndjson"
}

// deleteTree removes what is left under prefix, best effort (leftovers are harmless: they live
// in the control tree).
func (e *Exporter) deleteTree(ctx context.Context, prefix string) {
	var names []string
	_ = e.st.List(ctx, prefix, func(it store.Item) error {
		names = append(names, it.Name)
		return nil
	})
	for _, n := range names {
		if err := e.st.Delete(ctx, n); err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Str("blob", n).Msg("cleaning run folder")
		}
	}
}
