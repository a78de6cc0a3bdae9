package faces

import "strings"

// Smileys maps the names SMILEY accepts (case-sensitive) to the HTML
// entities upstream sends; an unknown name gives Vomiting.
var Smileys = map[string]string{
	"Grinning":    "&#x1F603;",
	"Sleeping":    "&#x1F634;",
	"Cursing":     "&#x1F92C;",
	"Kaboom":      "&#x1F92F;",
	"HeartEyes":   "&#x1F60D;",
	"Neutral":     "&#x1F610;",
	"RollingEyes": "&#x1F644;",
	"Screaming":   "&#x1F631;",
	"Vomiting":    "&#x1F92E;",
}

// Colors is Paul Tol's "bright" palette with upstream's names (blue is
// #66CCEE, darkblue #4477AA); an unknown name gives yellow.
var Colors = map[string]string{
	"grey":     "#BBBBBB",
	"black":    "#000000",
	"white":    "#FFFFFF",
	"darkblue": "#4477AA",
	"blue":     "#66CCEE",
	"green":    "#228833",
	"yellow":   "#CCBB44",
	"red":      "#EE6677",
	"purple":   "#AA3377",
}

// SmileyNamed returns the entity for name and the name actually used.
func SmileyNamed(name string) (entity, used string) {
	if entity, ok := Smileys[name]; ok {
		return entity, name
	}
	return Smileys["Vomiting"], "Vomiting"
}

// ColorNamed returns the color for name, passes a "#..." value through, and
// gives yellow for anything else.
func ColorNamed(name string) string {
	if color, ok := Colors[name]; ok {
		return color
	}
	if strings.HasPrefix(name, "#") {
		return name
	}
	return Colors["yellow"]
}

// fallbackSmiley is what face shows for a failed smiley call: Sleeping for
// a gateway timeout, Cursing for anything else.
func fallbackSmiley(status int) string {
	if status == 504 {
		return Smileys["Sleeping"]
	}
	return Smileys["Cursing"]
}

// fallbackColor is what face shows for a failed color call: red for a
// gateway timeout, grey for anything else.
func fallbackColor(status int) string {
	if status == 504 {
		return Colors["red"]
	}
	return Colors["grey"]
}
