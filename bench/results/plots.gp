set terminal png size 900,540
set logscale xy
set grid
set key left top
set xlabel 'clients'
set output 'bench/results/fanout-gbps-8.png'
set ylabel 'delivered Gbit/s (8 Mbit/s per client)'
plot 'bench/results/fanout-gstreamer-8.dat' using 1:2 with linespoints title 'gstreamer', 'bench/results/fanout-plextv-8.dat' using 1:2 with linespoints title 'plextv', 'bench/results/fanout-vlc-8.dat' using 1:2 with linespoints title 'vlc'
set output 'bench/results/fanout-cpu-8.png'
set ylabel 'relay CPU % (8 Mbit/s per client)'
plot 'bench/results/fanout-gstreamer-8.dat' using 1:3 with linespoints title 'gstreamer', 'bench/results/fanout-plextv-8.dat' using 1:3 with linespoints title 'plextv', 'bench/results/fanout-vlc-8.dat' using 1:3 with linespoints title 'vlc'
set output 'bench/results/fanout-gbps-3.png'
set ylabel 'delivered Gbit/s (3 Mbit/s per client)'
plot 'bench/results/fanout-plextv-3.dat' using 1:2 with linespoints title 'plextv'
set output 'bench/results/fanout-cpu-3.png'
set ylabel 'relay CPU % (3 Mbit/s per client)'
plot 'bench/results/fanout-plextv-3.dat' using 1:3 with linespoints title 'plextv'
set output 'bench/results/fanout-gbps-20.png'
set ylabel 'delivered Gbit/s (20 Mbit/s per client)'
plot 'bench/results/fanout-plextv-20.dat' using 1:2 with linespoints title 'plextv'
set output 'bench/results/fanout-cpu-20.png'
set ylabel 'relay CPU % (20 Mbit/s per client)'
plot 'bench/results/fanout-plextv-20.dat' using 1:3 with linespoints title 'plextv'
