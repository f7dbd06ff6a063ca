package curation

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSessionCookie: the session cookie is HttpOnly and SameSite=Strict,
// and Secure where kiln is reached over https.
func TestSessionCookie(t *testing.T) {
	t.Parallel()
	plain := Deps{}.sessionCookie("tok", time.Now().Add(time.Hour))
	require.True(t, plain.HttpOnly)
	require.False(t, plain.Secure)
	secure := Deps{SecureCookies: true}.sessionCookie("tok", time.Now().Add(time.Hour))
	require.True(t, secure.Secure)
	require.Contains(t, secure.String(), "; Secure")
	require.Contains(t, secure.String(), "SameSite=Strict")
}
