set terminal png size 900,540
set logscale xy
set grid
set key left top
set xlabel 'clients'
set output 'bench/results/fanout-gbps-8.png'
set ylabel 'delivered Gbit/s (8 Mbit/s per client)'
plot 'bench/results/fanout-direct-8.dat' using 1:2 with linespoints title 'direct', 'bench/results/fanout-gstreamer-8.dat' using 1:2 with linespoints title 'gstreamer', 'bench/results/fanout-vlc-8.dat' using 1:2 with linespoints title 'vlc'
set output 'bench/results/fanout-cpu-8.png'
set ylabel 'relay CPU % (8 Mbit/s per client)'
plot 'bench/results/fanout-direct-8.dat' using 1:3 with linespoints title 'direct', 'bench/results/fanout-gstreamer-8.dat' using 1:3 with linespoints title 'gstreamer', 'bench/results/fanout-vlc-8.dat' using 1:3 with linespoints title 'vlc'
