package pkgmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// moduleSuffixes are the file name endings of kernel modules: plain, and
// compressed by kbuild's CONFIG_MODULE_COMPRESS_*.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// preferredSubdirs are searched before the rest of /lib/modules/<krel>.
// SUSE's kernel-livepatch packages install into livepatch/ (the spec's
// INSTALL_MOD_DIR=livepatch), SLE 12's kgraft-patch packages into kgraft/;
// updates/ and extra/ are where depmod gives out-of-tree modules priority,
// so a module there is the one that loads.
var preferredSubdirs = []string{"livepatch", "kgraft", "updates", "extra"}

// normalizeModName maps a module or file name to the form the kernel uses
// for KBUILD_MODNAME: kbuild turns "-" and "," into "_", so
// livepatch-6-150400_2_2.ko loads as livepatch_6_150400_2_2.
func normalizeModName(s string) string {
	return strings.NewReplacer("-", "_", ",", "_").Replace(s)
}

// moduleStem returns the name of a module file without its suffix, or false
// when name is not a module file.
func moduleStem(name string) (string, bool) {
	for _, suf := range moduleSuffixes {
		if stem, ok := strings.CutSuffix(name, suf); ok && stem != "" {
			return stem, true
		}
	}
	return "", false
}

// errSearchLimit stops a walk that reached Config.MaxEntries.
var errSearchLimit = errors.New("search limit reached")

// FindModule returns the file of the loaded module named module, searching,
// in order, <modules>/<krel>/{livepatch,kgraft,updates,extra}, klp's and kpatch's
// stores (<store>/<krel>), then the rest of <modules>/<krel>; "-" and "_"
// (and ",") in file names match each other. It returns
// [ErrModuleNotFound] when no file matches. Notes report a search cut
// short by [Config.MaxEntries].
//
// The walk does not follow symbolic links to directories: /lib/modules/<krel>/build
// points into a kernel source tree, which is large and holds no installed
// modules.
func (s *Source) FindModule(module string) (string, []string, error) {
	if module == "" || strings.ContainsAny(module, "/\x00") {
		return "", nil, fmt.Errorf("find module %q: invalid name", module)
	}
	krel, err := s.KernelRelease()
	if err != nil {
		return "", nil, fmt.Errorf("find module %s: %w", module, err)
	}
	want := normalizeModName(module)

	var roots []string
	var trees []string
	seen := map[string]bool{}
	for _, dir := range s.cfg.ModulesDirs {
		tree := filepath.Join(dir, krel)
		real, err := filepath.EvalSymlinks(tree)
		if err != nil || seen[real] {
			continue // missing, or /lib/modules reached again via /usr/lib
		}
		seen[real] = true
		trees = append(trees, tree)
		for _, sub := range preferredSubdirs {
			roots = append(roots, filepath.Join(tree, sub))
		}
	}
	for _, dir := range s.cfg.StoreDirs {
		roots = append(roots, filepath.Join(dir, krel))
	}

	w := walker{want: want, budget: s.cfg.MaxEntries, maxDepth: s.cfg.MaxDepth}
	for _, root := range roots {
		if found, err := w.walk(root, nil); found != "" || err != nil {
			return found, w.notes(), err
		}
	}
	// The rest of each tree, skipping what was searched already.
	for _, tree := range trees {
		skip := map[string]bool{}
		for _, sub := range preferredSubdirs {
			skip[sub] = true
		}
		if found, err := w.walk(tree, skip); found != "" || err != nil {
			return found, w.notes(), err
		}
	}
	return "", w.notes(), fmt.Errorf("find module %s: %w under %s", module, ErrModuleNotFound, describeRoots(s.cfg, krel))
}

func describeRoots(cfg Config, krel string) string {
	var dirs []string
	for _, d := range cfg.ModulesDirs {
		dirs = append(dirs, filepath.Join(d, krel))
	}
	for _, d := range cfg.StoreDirs {
		dirs = append(dirs, filepath.Join(d, krel))
	}
	return strings.Join(dirs, ", ")
}

// walker searches directory trees for a module file within a budget of
// directory entries shared by all the trees it walks.
type walker struct {
	want     string
	budget   int
	maxDepth int
	limited  bool
}

// walk searches root. skipTop names directories directly under root that
// are not entered. A missing or unreadable root is skipped: most systems
// have no updates/ or klp store.
func (w *walker) walk(root string, skipTop map[string]bool) (string, error) {
	if w.limited {
		return "", nil
	}
	fi, err := os.Stat(root) // follows a symlinked root such as updates -> dkms
	if err != nil || !fi.IsDir() {
		return "", nil
	}
	var found string
	// os.DirFS resolves the root itself but reports symlinks inside it as
	// symlinks, so fs.WalkDir does not descend into them.
	err = fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// An unreadable subdirectory does not end the search.
			if d != nil && d.IsDir() && p != "." {
				return fs.SkipDir
			}
			return nil
		}
		if p == "." {
			return nil
		}
		w.budget--
		if w.budget < 0 {
			w.limited = true
			return errSearchLimit
		}
		if d.IsDir() {
			if strings.Count(p, "/")+1 >= w.maxDepth || (skipTop != nil && !strings.Contains(p, "/") && skipTop[p]) {
				return fs.SkipDir
			}
			return nil
		}
		if stem, ok := moduleStem(d.Name()); ok && normalizeModName(stem) == w.want {
			found = filepath.Join(root, filepath.FromSlash(p))
			return fs.SkipAll
		}
		return nil
	})
	if err != nil && !errors.Is(err, errSearchLimit) {
		return "", fmt.Errorf("search %s: %w", root, err)
	}
	return found, nil
}

func (w *walker) notes() []string {
	if !w.limited {
		return nil
	}
	return []string{"the search for module files stopped early (too many files under the module directories); package information may be missing"}
}
