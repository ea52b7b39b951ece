package mgmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// staticTokenLifetime is the expiry reported for static tokens. The real expiry is unknown; the
// API answers 401 when a token has expired. A token file's token is reported with RefreshOn set
// to now, so azcore asks for it again as often as its refresh backoff allows (every 30 s), and
// at once after a 401.
const staticTokenLifetime = time.Hour

// StaticToken returns a credential that always returns token (a bearer token obtained
// elsewhere, for example from `az account get-access-token`), whatever the requested scope.
// Surrounding whitespace is trimmed; an empty token is an error at GetToken.
func StaticToken(token string) azcore.TokenCredential {
	return staticToken(strings.TrimSpace(token))
}

type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if t == "" {
		return azcore.AccessToken{}, errors.New("static bearer token is empty")
	}
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(staticTokenLifetime)}, nil
}

// TokenFile returns a credential that reads a bearer token from the file at path, trimming
// surrounding whitespace. The file is read again whenever it changes (another modification
// time, size or file, as when a mounted secret is rotated), so a rotated token is picked up on
// the next token request. A missing, unreadable or empty file is an error at GetToken.
func TokenFile(path string) azcore.TokenCredential { return &tokenFile{path: path} }

type tokenFile struct {
	path string

	mu    sync.Mutex
	info  os.FileInfo // of the last successful read
	token string
}

func (f *tokenFile) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, err := os.Stat(f.path)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("token file: %w", err)
	}
	if f.info == nil || !sameVersion(f.info, info) {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return azcore.AccessToken{}, fmt.Errorf("token file: %w", err)
		}
		tok := string(bytes.TrimSpace(b))
		if tok == "" {
			return azcore.AccessToken{}, fmt.Errorf("token file %s is empty", f.path)
		}
		if strings.ContainsAny(tok, "\r\n") {
			return azcore.AccessToken{}, fmt.Errorf("token file %s holds more than one line; want just the token", f.path)
		}
		f.info, f.token = info, tok
	}
	now := time.Now()
	return azcore.AccessToken{Token: f.token, ExpiresOn: now.Add(staticTokenLifetime), RefreshOn: now}, nil
}

// sameVersion reports whether two stats describe the same file contents as far as metadata
// can tell.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
