// k8s-jsonschema turns the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of k8s.io/kubernetes)
// into the standalone, strict JSON schemas kubeconform reads: one file per kind and version,
// <kind>[-<group's first label>]-<version>.json (e.g. deployment-apps-v1.json, service-v1.json), every $ref
// inlined, additionalProperties false on every object with properties (unknown fields are errors), and the
// int-or-string and quantity types as the unions the API server accepts.
//
//	go run ./tests/charts/k8s-jsonschema SWAGGER_JSON OUT_DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type schema = map[string]any

var definitions map[string]schema

const refPrefix = "#/definitions/"

var special = map[string]schema{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}},
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   {"oneOf": []any{schema{"type": "string"}, schema{"type": "number"}}},
}

// expand returns node with its $refs inlined. A definition already being expanded on the path (the recursive
// JSONSchemaProps of CustomResourceDefinition) becomes {} (anything).
func expand(node any, path map[string]bool) any {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok && strings.HasPrefix(ref, refPrefix) {
			name := strings.TrimPrefix(ref, refPrefix)
			if s, ok := special[name]; ok {
				return s
			}
			if path[name] {
				return schema{}
			}
			def, ok := definitions[name]
			if !ok {
				fmt.Fprintf(os.Stderr, "k8s-jsonschema: unknown $ref %s\n", ref)
				os.Exit(1)
			}
			path[name] = true
			out := expand(def, path)
			delete(path, name)
			return out
		}
		if n["format"] == "int-or-string" {
			return special["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
		}
		out := schema{}
		for k, v := range n {
			if k == "properties" {
				props := schema{}
				for pk, pv := range v.(map[string]any) {
					props[pk] = expand(pv, path)
				}
				out[k] = props
				continue
			}
			if strings.HasPrefix(k, "x-kubernetes-") || k == "description" {
				continue
			}
			out[k] = expand(v, path)
		}
		if _, hasProps := out["properties"]; hasProps {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = expand(v, path)
		}
		return out
	default:
		return n
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: k8s-jsonschema SWAGGER_JSON OUT_DIR")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-jsonschema:", err)
		os.Exit(1)
	}
	var doc struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-jsonschema: parsing", os.Args[1]+":", err)
		os.Exit(1)
	}
	definitions = doc.Definitions
	out := os.Args[2]
	if err := os.MkdirAll(out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-jsonschema:", err)
		os.Exit(1)
	}
	written := 0
	for name, def := range definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			group, version, kind := gvk["group"].(string), gvk["version"].(string), gvk["kind"].(string)
			// Lists and the *Options/Event kinds of meta/v1 are attached to every group; keep the real kinds.
			if strings.HasPrefix(name, "io.k8s.apimachinery.pkg.apis.meta.v1.") && group != "" {
				continue
			}
			file := strings.ToLower(kind)
			if group != "" {
				file += "-" + strings.ToLower(strings.Split(group, ".")[0])
			}
			file += "-" + strings.ToLower(version) + ".json"
			s := expand(def, map[string]bool{name: true}).(schema)
			s["$schema"] = "http://json-schema.org/schema#"
			props, _ := s["properties"].(schema)
			if props != nil {
				if _, ok := props["kind"]; ok {
					props["kind"] = schema{"type": "string", "enum": []any{kind}}
				}
				if _, ok := props["apiVersion"]; ok {
					apiVersion := version
					if group != "" {
						apiVersion = group + "/" + version
					}
					props["apiVersion"] = schema{"type": "string", "enum": []any{apiVersion}}
				}
			}
			data, err := json.Marshal(s)
			if err == nil {
				err = os.WriteFile(filepath.Join(out, file), data, 0o644)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "k8s-jsonschema:", err)
				os.Exit(1)
			}
			written++
		}
	}
	fmt.Printf("k8s-jsonschema: %d schemas in %s\n", written, out)
}
