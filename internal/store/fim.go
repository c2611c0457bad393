package store

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilsec/vigil/internal/fim"
)

// Baseline is the file integrity baseline, in its own table of the store's
// database (fim_baseline). The CLI and the agent each open it; SQLite's WAL
// and busy timeout let them share the file.
type Baseline struct {
	db *sql.DB
}

const baselineSchema = `
CREATE TABLE IF NOT EXISTS fim_baseline (
	path TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	size INTEGER NOT NULL,
	mode INTEGER NOT NULL,
	uid INTEGER NOT NULL,
	gid INTEGER NOT NULL,
	inode INTEGER NOT NULL,
	mtime_ns INTEGER NOT NULL,
	target TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	recorded INTEGER NOT NULL
);
`

// OpenBaseline opens (creating if needed) the baseline table of the
// database at path.
func OpenBaseline(path string) (*Baseline, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("fim baseline: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("fim baseline %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(baselineSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("fim baseline %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("fim baseline: %w", err)
	}
	return &Baseline{db: db}, nil
}

// Close closes the database.
func (b *Baseline) Close() error { return b.db.Close() }

// Replace makes entries the whole baseline.
func (b *Baseline) Replace(entries map[string]fim.Entry) error {
	return b.tx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM fim_baseline`); err != nil {
			return err
		}
		return put(tx, entries)
	})
}

// Update records entries and forgets the paths in gone.
func (b *Baseline) Update(entries map[string]fim.Entry, gone []string) error {
	return b.tx(func(tx *sql.Tx) error {
		for _, p := range gone {
			if _, err := tx.Exec(`DELETE FROM fim_baseline WHERE path = ?`, p); err != nil {
				return err
			}
		}
		return put(tx, entries)
	})
}

func (b *Baseline) tx(fn func(*sql.Tx) error) error {
	tx, err := b.db.Begin()
	if err != nil {
		return fmt.Errorf("fim baseline: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("fim baseline: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fim baseline: %w", err)
	}
	return nil
}

func put(tx *sql.Tx, entries map[string]fim.Entry) error {
	st, err := tx.Prepare(`INSERT OR REPLACE INTO fim_baseline
		(path, type, size, mode, uid, gid, inode, mtime_ns, target, sha256, recorded) VALUES (?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UnixNano()
	for _, e := range entries {
		if _, err := st.Exec(e.Path, e.Type, e.Size, e.Mode, e.UID, e.GID, int64(e.Inode), e.Mtime.UnixNano(), e.Target, e.SHA256, now); err != nil {
			return err
		}
	}
	return nil
}

// Load reads the whole baseline.
func (b *Baseline) Load() (map[string]fim.Entry, error) {
	rows, err := b.db.Query(`SELECT path, type, size, mode, uid, gid, inode, mtime_ns, target, sha256 FROM fim_baseline`)
	if err != nil {
		return nil, fmt.Errorf("fim baseline: %w", err)
	}
	defer rows.Close()
	out := map[string]fim.Entry{}
	for rows.Next() {
		var e fim.Entry
		var ino, mt int64
		if err := rows.Scan(&e.Path, &e.Type, &e.Size, &e.Mode, &e.UID, &e.GID, &ino, &mt, &e.Target, &e.SHA256); err != nil {
			return nil, fmt.Errorf("fim baseline: %w", err)
		}
		e.Inode, e.Mtime = uint64(ino), time.Unix(0, mt)
		out[e.Path] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fim baseline: %w", err)
	}
	return out, nil
}
