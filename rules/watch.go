package rules

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay lets a burst of writes (an editor saving, a config manager
// replacing the file) settle into one reload.
const reloadDelay = 100 * time.Millisecond

// Watcher reloads a rules file when it changes on disk or when the process
// receives SIGHUP. It watches the file's directory, not the file, so that
// editors and config managers that save by writing a new file and renaming
// it over the old one are noticed too.
//
// Each reload calls back with the new RuleSet, or with the error that
// stopped it. A broken file never replaces good rules: the caller keeps
// the rules it has and shows the error (Err returns it until a later
// reload succeeds).
type Watcher struct {
	path     string
	onReload func(*RuleSet, error)

	fsw     *fsnotify.Watcher
	sigs    chan os.Signal
	trigger chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	err      error
	lastData []byte
}

// NewWatcher starts watching path. onReload runs on the watcher's
// goroutine, one call at a time.
func NewWatcher(path string, onReload func(*RuleSet, error)) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch rules file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := fsw.Add(dir); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch rules directory %s: %w", dir, err)
	}
	w := &Watcher{
		path:     path,
		onReload: onReload,
		fsw:      fsw,
		sigs:     make(chan os.Signal, 1),
		trigger:  make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	// lastData starts empty: the first change notification always reloads,
	// so an edit made between the caller's load and this watch is not lost.
	signal.Notify(w.sigs, syscall.SIGHUP)
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// WatchEngine keeps e's rules in step with the file at path: a good
// reload replaces them, a broken one is logged to logger (stderr when nil)
// and leaves them in place. Err on the returned Watcher tells front ends
// whether the file on disk is currently broken.
func WatchEngine(path string, e *Engine, logger *slog.Logger) (*Watcher, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return NewWatcher(path, func(set *RuleSet, err error) {
		if err != nil {
			logger.Error("rules reload failed; previous rules stay active", "path", path, "error", oneLine(err))
			return
		}
		e.SetRules(set)
		logger.Info("rules reloaded", "path", path, "rules", len(set.Rules))
	})
}

// oneLine folds a multi-line error (ParseErrors) into one log line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " | ") }

// Reload asks for a reload now, as SIGHUP does.
func (w *Watcher) Reload() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Err returns the error of the last reload, or nil if it succeeded (or none
// happened yet).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops watching and waits for a running callback to return.
func (w *Watcher) Close() error {
	signal.Stop(w.sigs)
	close(w.done)
	err := w.fsw.Close()
	w.wg.Wait()
	return err
}

func (w *Watcher) run() {
	defer w.wg.Done()
	base := filepath.Base(w.path)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			// Kubernetes config maps swap a "..data" symlink; anything else
			// in the directory is not ours.
			name := filepath.Base(ev.Name)
			if name != base && !strings.HasPrefix(name, "..") {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(reloadDelay)
			} else {
				timer.Reset(reloadDelay)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			w.reload(false)
		case <-w.sigs:
			w.reload(true)
		case <-w.trigger:
			w.reload(true)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.report(nil, fmt.Errorf("watch rules file %s: %w", w.path, err))
		}
	}
}

// reload reads and parses the file. A change notification whose content
// is what was last loaded is ignored; a forced reload always reports.
func (w *Watcher) reload(force bool) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.lastData = nil
		w.report(nil, fmt.Errorf("read rules file: %w", err))
		return
	}
	if !force && w.lastData != nil && bytes.Equal(data, w.lastData) {
		return
	}
	w.lastData = data
	set, err := Parse(w.path, data)
	w.report(set, err)
}

func (w *Watcher) report(set *RuleSet, err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	if w.onReload != nil {
		w.onReload(set, err)
	}
}
