package config

import (
	"encoding"
	"reflect"
	"strings"
)

// knownKeys returns the dotted TOML keys of the configuration, such as
// "tls.cert" and "route.smarthost" (array tables without an index).
func knownKeys() map[string]bool {
	keys := map[string]bool{}
	addKeys(keys, reflect.TypeFor[Config](), "")
	return keys
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func addKeys(keys map[string]bool, t reflect.Type, prefix string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}

	for field := range t.Fields() {
		tag := strings.Split(field.Tag.Get("toml"), ",")[0]
		if field.Anonymous && tag == "" {
			addKeys(keys, field.Type, prefix)
			continue
		}
		if tag == "-" || !field.IsExported() {
			continue
		}
		if tag == "" {
			tag = field.Name
		}

		key := prefix + tag
		keys[key] = true
		addKeys(keys, field.Type, key+".")
	}
}

// suggestKey returns a known key within two edits of an unknown one under
// the same table, or "" when there is none.
func suggestKey(unknown string, known map[string]bool) string {
	parent, name := splitKey(unknown)

	best, bestDistance := "", 3
	for key := range known {
		keyParent, keyName := splitKey(key)
		if keyParent != parent {
			continue
		}
		if d := editDistance(name, keyName); d < bestDistance || (d == bestDistance && key < best) {
			best, bestDistance = key, d
		}
	}
	return best
}

func splitKey(key string) (parent, name string) {
	i := strings.LastIndex(key, ".")
	if i < 0 {
		return "", key
	}
	return key[:i], key[i+1:]
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}

	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous = current
	}
	return previous[len(b)]
}
