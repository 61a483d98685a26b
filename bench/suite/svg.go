package suite

import (
	"fmt"
	"html"
	"math"
	"strings"
)

var targetColors = map[string]string{
	TargetHerald: "#2b6cb0", TargetHeraldHistory: "#63b3ed", TargetHeraldSocketIO: "#805ad5", TargetHeraldMixed: "#b794f4", TargetWS: "#dd6b20", TargetSocketIO: "#38a169", TargetFloor: "#718096",
}

// RenderSVG draws t as small multiples: one horizontal bar chart per row
// (each with its own scale, since units differ), one bar per target,
// values printed next to the bars. Rows without any value are skipped.
func RenderSVG(t Table) string {
	const (
		width    = 720
		labelW   = 90
		barH     = 16
		gap      = 4
		titleH   = 30
		panelPad = 26
		valueW   = 90
	)
	var rows []Row
	for _, r := range t.Rows {
		for _, c := range t.Columns {
			if v := r.Values[c]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				rows = append(rows, r)
				break
			}
		}
	}
	panelH := panelPad + len(t.Columns)*(barH+gap) + 8
	height := titleH + len(rows)*panelH + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica,Arial,sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(t.Title))
	y := titleH
	plotW := float64(width - labelW - valueW - 20)
	for _, r := range rows {
		name := r.Metric
		if r.Unit != "" {
			name += " (" + r.Unit + ")"
		}
		if r.LowerBetter {
			name += ", lower is better"
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+16, html.EscapeString(name))
		maxV := 0.0
		for _, c := range t.Columns {
			if v := r.Values[c]; !math.IsNaN(v) && v > maxV {
				maxV = v
			}
		}
		by := y + panelPad
		for _, c := range t.Columns {
			v := r.Values[c]
			fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`+"\n", by+barH-4, html.EscapeString(label(c)))
			w := 0.0
			if !math.IsNaN(v) && maxV > 0 && v > 0 {
				w = math.Max(1, plotW*v/maxV)
			}
			color := targetColors[c]
			if color == "" {
				color = "#718096"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, by, w, barH, color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+w+6, by+barH-4, html.EscapeString(formatValue(v)))
			by += barH + gap
		}
		y += panelH
	}
	b.WriteString("</svg>\n")
	return b.String()
}
