package entratest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

var b64 = base64.RawURLEncoding

// signJWT makes an RS256 JWT, the algorithm Entra signs access tokens with.
func signJWT(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	return signJWTHeader(key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, claims)
}

// signJWTHeader signs with RS256 under the given header fields.
func signJWTHeader(key *rsa.PrivateKey, hdr, claims map[string]any) (string, error) {
	hdr["alg"] = "RS256"
	h, err := json.Marshal(hdr)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// unsignedJWT is what Entra's id_token looks like to MSAL: MSAL decodes the
// payload and never checks the signature, so a signature is optional here.
func unsignedJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "."
}

// parsedJWT is a JWT split into its parts, not yet verified.
type parsedJWT struct {
	header    map[string]any
	claims    map[string]any
	signing   string // header.payload, the signed bytes
	signature []byte
}

var errMalformedJWT = errors.New("malformed JWT")

func parseJWT(raw string) (*parsedJWT, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errMalformedJWT
	}
	var p parsedJWT
	for i, dst := range []*map[string]any{&p.header, &p.claims} {
		b, err := b64.DecodeString(parts[i])
		if err != nil {
			return nil, errMalformedJWT
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, errMalformedJWT
		}
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errMalformedJWT
	}
	p.signing = parts[0] + "." + parts[1]
	p.signature = sig
	return &p, nil
}

// verify checks the signature with pub for RS256 or PS256, the two
// algorithms MSAL signs client assertions with.
func (p *parsedJWT) verify(pub *rsa.PublicKey) error {
	sum := sha256.Sum256([]byte(p.signing))
	switch alg, _ := p.header["alg"].(string); alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], p.signature)
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, sum[:], p.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	default:
		return fmt.Errorf("unsupported JWT alg %q", alg)
	}
}

func (p *parsedJWT) str(claim string) string {
	s, _ := p.claims[claim].(string)
	return s
}

// num reads a numeric claim such as exp; JSON numbers decode as float64.
func (p *parsedJWT) num(claim string) (int64, bool) {
	switch v := p.claims[claim].(type) {
	case float64:
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	}
	return 0, false
}

// hasAudience accepts aud as a string or an array, as RFC 7519 allows.
func (p *parsedJWT) hasAudience(want string) bool {
	switch v := p.claims["aud"].(type) {
	case string:
		return v == want
	case []any:
		for _, a := range v {
			if s, _ := a.(string); s == want {
				return true
			}
		}
	}
	return false
}
