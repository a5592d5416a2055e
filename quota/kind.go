package quota

import "reflect"

// KindName names, in words a caller of a JSON API understands, the kind
// of value a field wants: "a string", "an integer", never a Go type.
func KindName(k reflect.Kind) string {
	switch k {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an integer"
}
