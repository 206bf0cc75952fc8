package modinfo

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Signature describes an appended module signature. Only its presence and
// what it says about itself are reported; whether the kernel trusts the key
// is a property of the running system.
type Signature struct {
	// IDType is the module_signature id_type: "pkcs7" (PKEY_ID_PKCS7, the
	// only type kernels since 4.3 accept), "pgp" or "x509" (the old formats),
	// or "unknown(N)".
	IDType string
	// Signer is what kmod's modinfo prints as "signer": the issuer common
	// name of the PKCS#7 signer info (the signing certificate is not
	// embedded; sign-file identifies it by issuer and serial).
	Signer string
	// KeyID is kmod's "sig_key": the certificate serial number, or the
	// subject key identifier when the signer is identified that way, as
	// colon-separated upper-case hex bytes.
	KeyID string
	// HashAlgorithm is the digest algorithm ("sha256", ...), kmod's
	// "sig_hashalgo".
	HashAlgorithm string
	// SignatureAlgorithm is the public-key algorithm ("rsa", "ecdsa", ...).
	SignatureAlgorithm string
	// Length is the size of the signature data (sig_len) in bytes.
	Length int
	// Undetermined, when set, says which of the fields above could not be
	// read and why.
	Undetermined string
}

// moduleSigMagic ends a signed module (include/linux/module_signature.h).
const moduleSigMagic = "~Module signature appended~\n"

// sizeofModuleSignature is struct module_signature: u8 algo, hash, id_type,
// signer_len, key_id_len; u8 __pad[3]; __be32 sig_len.
const sizeofModuleSignature = 12

// splitSignature removes an appended signature from img and describes it.
// The returned image is what the ELF parser sees: the kernel, too, checks
// the ELF only after cutting the signature off.
func splitSignature(img []byte) ([]byte, *Signature, []string) {
	if !bytes.HasSuffix(img, []byte(moduleSigMagic)) {
		return img, nil, nil
	}
	rest := len(img) - len(moduleSigMagic)
	sig := &Signature{}
	if rest < sizeofModuleSignature {
		sig.IDType = "unknown"
		sig.Undetermined = "signature marker present but struct module_signature is truncated"
		return img[:rest], sig, nil
	}
	ms := img[rest-sizeofModuleSignature : rest]
	algo, hash, idType, signerLen, keyIDLen := ms[0], ms[1], ms[2], int(ms[3]), int(ms[4])
	sigLen := binary.BigEndian.Uint32(ms[8:])
	body := rest - sizeofModuleSignature
	sig.Length = int(sigLen)
	var notes []string

	switch idType {
	case 2: // PKEY_ID_PKCS7
		sig.IDType = "pkcs7"
		if uint64(sigLen) > uint64(body) {
			sig.Undetermined = fmt.Sprintf("sig_len %d exceeds the %d bytes before it", sigLen, body)
			return img[:body], sig, nil
		}
		if algo != 0 || hash != 0 || signerLen != 0 || keyIDLen != 0 || ms[5] != 0 || ms[6] != 0 || ms[7] != 0 {
			notes = append(notes, "PKCS#7 module_signature has unexpected non-zero fields; the kernel rejects it (EBADMSG)")
		}
		start := body - int(sigLen)
		if err := parsePKCS7(img[start:body], sig); err != nil {
			sig.Undetermined = "cannot parse PKCS#7 signature: " + err.Error()
		}
		return img[:start], sig, notes
	case 0, 1: // PKEY_ID_PGP, PKEY_ID_X509: signer name, key id, signature
		sig.IDType = [...]string{"pgp", "x509"}[idType]
		notes = append(notes, "signature is not PKCS#7; kernels since 4.3 reject it (ENOPKG)")
		total := uint64(sigLen) + uint64(signerLen) + uint64(keyIDLen)
		if total > uint64(body) {
			sig.Undetermined = fmt.Sprintf("signature lengths (%d) exceed the %d bytes before them", total, body)
			return img[:body], sig, notes
		}
		start := body - int(total)
		sig.Signer = string(img[start : start+signerLen])
		sig.KeyID = hexColon(img[start+signerLen : start+signerLen+keyIDLen])
		sig.HashAlgorithm = legacyHashName(hash)
		switch algo {
		case 0:
			sig.SignatureAlgorithm = "dsa"
		case 1:
			sig.SignatureAlgorithm = "rsa"
		default:
			sig.SignatureAlgorithm = fmt.Sprintf("unknown(%d)", algo)
		}
		return img[:start], sig, notes
	default:
		sig.IDType = fmt.Sprintf("unknown(%d)", idType)
		sig.Undetermined = fmt.Sprintf("unknown signature id_type %d", idType)
		if uint64(sigLen) <= uint64(body) {
			return img[:body-int(sigLen)], sig, nil
		}
		return img[:body], sig, nil
	}
}

// legacyHashName maps enum hash_algo (include/uapi/linux/hash_info.h).
func legacyHashName(h byte) string {
	names := []string{"md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224"}
	if int(h) < len(names) {
		return names[h]
	}
	return fmt.Sprintf("unknown(%d)", h)
}

var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

// digestNames maps digest algorithm OIDs to the names kmod prints.
var digestNames = map[string]string{
	"1.2.840.113549.2.5":      "md5",
	"1.3.14.3.2.26":           "sha1",
	"2.16.840.1.101.3.4.2.4":  "sha224",
	"2.16.840.1.101.3.4.2.1":  "sha256",
	"2.16.840.1.101.3.4.2.2":  "sha384",
	"2.16.840.1.101.3.4.2.3":  "sha512",
	"2.16.840.1.101.3.4.2.8":  "sha3-256",
	"2.16.840.1.101.3.4.2.9":  "sha3-384",
	"2.16.840.1.101.3.4.2.10": "sha3-512",
	"1.2.156.10197.1.401":     "sm3",
	"1.2.643.7.1.1.2.2":       "streebog256",
	"1.2.643.7.1.1.2.3":       "streebog512",
}

// signatureNames maps signature (public-key) algorithm OIDs. PKCS#7 made
// by sign-file says rsaEncryption; others name the digest too.
var signatureNames = map[string]string{
	"1.2.840.113549.1.1.1":    "rsa",
	"1.2.840.113549.1.1.5":    "rsa",
	"1.2.840.113549.1.1.11":   "rsa",
	"1.2.840.113549.1.1.12":   "rsa",
	"1.2.840.113549.1.1.13":   "rsa",
	"1.2.840.113549.1.1.14":   "rsa",
	"1.2.840.113549.1.1.10":   "rsa-pss",
	"1.2.840.10045.2.1":       "ecdsa",
	"1.2.840.10045.4.1":       "ecdsa",
	"1.2.840.10045.4.3.1":     "ecdsa",
	"1.2.840.10045.4.3.2":     "ecdsa",
	"1.2.840.10045.4.3.3":     "ecdsa",
	"1.2.840.10045.4.3.4":     "ecdsa",
	"1.3.101.112":             "ed25519",
	"1.3.101.113":             "ed448",
	"1.2.156.10197.1.301.1":   "sm2",
	"1.2.156.10197.1.501":     "sm2",
	"2.16.840.1.101.3.4.3.17": "ml-dsa-44",
	"2.16.840.1.101.3.4.3.18": "ml-dsa-65",
	"2.16.840.1.101.3.4.3.19": "ml-dsa-87",
}

func oidName(names map[string]string, oid asn1.ObjectIdentifier) string {
	if n, ok := names[oid.String()]; ok {
		return n
	}
	return "unknown(" + oid.String() + ")"
}

// parsePKCS7 reads the first SignerInfo of a PKCS#7 SignedData (RFC 2315
// section 9) into sig. Only what identifies the signer and the algorithms is
// decoded; the signature is not verified.
func parsePKCS7(der []byte, sig *Signature) error {
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(der, &ci); err != nil {
		return fmt.Errorf("content info: %w", err)
	} else if len(rest) > 0 {
		return errors.New("trailing data after content info")
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return fmt.Errorf("content type %v is not signedData", ci.ContentType)
	}
	// SignedData ::= SEQUENCE { version, digestAlgorithms SET, contentInfo,
	//   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL,
	//   signerInfos SET }
	var sd asn1.RawValue
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return fmt.Errorf("signed data: %w", err)
	}
	fields, err := asn1Elements(sd.Bytes)
	if err != nil {
		return fmt.Errorf("signed data: %w", err)
	}
	var signerInfos *asn1.RawValue
	for i := 3; i < len(fields); i++ { // after version, digestAlgorithms, contentInfo
		if fields[i].Class == asn1.ClassUniversal && fields[i].Tag == asn1.TagSet {
			signerInfos = &fields[i]
		}
	}
	if signerInfos == nil {
		return errors.New("no signer infos")
	}
	infos, err := asn1Elements(signerInfos.Bytes)
	if err != nil || len(infos) == 0 {
		return errors.New("no signer info")
	}
	// SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm,
	//   authenticatedAttributes [0] IMPLICIT OPTIONAL,
	//   digestEncryptionAlgorithm, encryptedDigest, ... }
	si, err := asn1Elements(infos[0].Bytes)
	if err != nil {
		return fmt.Errorf("signer info: %w", err)
	}
	if len(si) < 5 {
		return errors.New("signer info too short")
	}
	var errs []error
	switch sid := si[1]; {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var ias struct {
			Issuer asn1.RawValue
			Serial asn1.RawValue
		}
		if _, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil {
			errs = append(errs, fmt.Errorf("issuer and serial: %w", err))
			break
		}
		sig.KeyID = hexColon(bytes.TrimLeft(ias.Serial.Bytes, "\x00"))
		var rdn pkix.RDNSequence
		if _, err := asn1.Unmarshal(ias.Issuer.FullBytes, &rdn); err != nil {
			errs = append(errs, fmt.Errorf("issuer: %w", err))
			break
		}
		var name pkix.Name
		name.FillFromRDNSequence(&rdn)
		sig.Signer = name.CommonName
		if sig.Signer == "" {
			sig.Signer = rdn.String()
		}
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0: // subjectKeyIdentifier
		sig.KeyID = hexColon(sid.Bytes)
	default:
		errs = append(errs, errors.New("unknown signer identifier"))
	}
	var alg pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(si[2].FullBytes, &alg); err != nil {
		errs = append(errs, fmt.Errorf("digest algorithm: %w", err))
	} else {
		sig.HashAlgorithm = oidName(digestNames, alg.Algorithm)
	}
	enc := si[3]
	if enc.Class == asn1.ClassContextSpecific && enc.Tag == 0 { // authenticated attributes
		enc = si[4]
	}
	if _, err := asn1.Unmarshal(enc.FullBytes, &alg); err != nil {
		errs = append(errs, fmt.Errorf("signature algorithm: %w", err))
	} else {
		sig.SignatureAlgorithm = oidName(signatureNames, alg.Algorithm)
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// asn1Elements splits the contents of a constructed value into its elements.
func asn1Elements(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

// hexColon formats b as kmod does: "0C:DF:9A".
func hexColon(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}
